"""The model server's optional columns of the inference log, next to the fixed ones of
:mod:`mlops.data.inference_log`.

A predictions row may carry ``correlation_id`` (the client's ``X-Request-ID``; the row's ``request_id`` is the
server's) and ``out_of_range`` (flagged per ``serving.out_of_range``); a feedback row ``correction`` (it
replaces an earlier label). The writer keeps them as the last element of a buffered record, a dict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: The optional columns and their Arrow type names.
EXTRA_COLUMNS = {"correlation_id": "string", "out_of_range": "bool_", "correction": "bool_"}


def extra_values(row: dict[str, Any]) -> dict[str, Any]:
    """The optional columns a row gives."""
    return {key: row[key] for key in EXTRA_COLUMNS if key in row}


def with_extra_columns(table: pa.Table, records: list[tuple[Any, ...]]) -> pa.Table:
    """``table`` with a column per optional key that any record's last element (a dict) holds."""
    import pyarrow as pa

    names = dict.fromkeys(key for record in records if isinstance(record[-1], dict) for key in record[-1])
    for name in names:
        values = [record[-1].get(name) if isinstance(record[-1], dict) else None for record in records]
        table = table.append_column(name, pa.array(values, type=getattr(pa, EXTRA_COLUMNS[name])()))
    return table
