"""The inference log's format and its reader: where parts live, their schema, and reading a date range.

The writer that the model server uses is :class:`mlops.serving.inference_log.InferenceLog`; monitoring, the
simulation and the demo read through the functions here.
"""

from __future__ import annotations

import numbers
import re
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops.config import settings
from mlops.data import storage
from mlops.errors import MlopsError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


PREDICTIONS = "predictions"


FEEDBACK = "feedback"


PREDICTION_KEYS = ("time", "request_id", "model_version", "inputs", "prediction", "route")


_DATE_IN_PATH = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")


# Listing one prefix per day beats listing the whole pipeline only for short windows.
_MAX_DAYS_LISTED_ONE_BY_ONE = 62


class InferenceLogError(MlopsError):
    """The inference log was misused (a malformed row, a bad setting)."""

    code = "INFERENCE_LOG_ERROR"


# Reading (monitoring's side) -------------------------------------------------------------------------------
def inference_log_uri(pipeline: str, configured: str | None = None) -> str:
    """Where a pipeline's inference log lives: ``configured`` (``serving.inference_log.uri``) or
    ``<MLOPS_STORE_URI>/<pipeline>/inference``."""
    return (
        storage.resolve_uri(configured)
        if configured
        else storage.join(settings.store_uri(), pipeline, "inference")
    )


def read_inference_log(
    uri: str, pipeline: str, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """The predictions served between the UTC dates ``start`` and ``end`` (inclusive; open when None).

    Columns: ``time``, ``request_id``, ``model_version``, ``route``, ``prediction`` and ``input.<feature>``,
    sorted by time; an empty frame with the fixed columns when there is nothing.
    """
    return _read(uri, PREDICTIONS, pipeline, start, end)


def read_feedback(
    uri: str, pipeline: str, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """The feedback labels received between ``start`` and ``end``: ``time``, ``request_id``, ``label``."""
    return _read(uri, FEEDBACK, pipeline, start, end)


def join_feedback(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Predictions with their label (left join on ``request_id``; the latest label of a request wins).

    Adds ``label`` and ``feedback_time`` (both missing where no label came); keeps the predictions' order.
    """
    latest = (
        feedback.sort_values("time", kind="stable")
        .drop_duplicates("request_id", keep="last")
        .loc[:, ["request_id", "time", "label"]]
        .rename(columns={"time": "feedback_time"})
    )
    return predictions.merge(latest, on="request_id", how="left", validate="many_to_one")


def _empty_schema(kind: str) -> pa.Schema:
    import pyarrow as pa

    fixed = [("time", pa.timestamp("us", tz="UTC")), ("request_id", pa.string())]
    if kind == PREDICTIONS:
        return pa.schema(
            [*fixed, ("model_version", pa.int64()), ("route", pa.string()), ("prediction", pa.string())]
        )
    return pa.schema([*fixed, ("label", pa.string())])


def _read(uri: str, kind: str, pipeline: str, start: date | None, end: date | None) -> pd.DataFrame:
    """Read the ``part-*.parquet`` files of the dates in ``[start, end]`` with ``pyarrow.dataset`` (hive
    partitions ``date=YYYY-MM-DD``), each file with its own schema, then unify the value columns' types."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    filesystem, root = storage.arrow_filesystem(
        storage.join(storage.resolve_uri(uri), kind, f"pipeline={pipeline}")
    )
    partitioning = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")

    def dataset(path: str) -> ds.Dataset | None:
        try:
            return ds.dataset(
                path,
                filesystem=filesystem,
                format="parquet",
                partitioning=partitioning,
                exclude_invalid_files=False,
            )
        except FileNotFoundError:
            return None

    if start is not None and end is not None and 0 <= (end - start).days < _MAX_DAYS_LISTED_ONE_BY_ONE:
        # A short range lists only its own days' folders, not the whole log.
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        found = [dataset(f"{root}/date={day.isoformat()}") for day in days]
        datasets = [d for d in found if d is not None]
        fragments = [fragment for d in datasets for fragment in d.get_fragments()]
    else:
        whole = dataset(root)
        wanted = ds.field("date").is_valid()
        if start is not None:
            wanted &= ds.field("date") >= start.isoformat()
        if end is not None:
            wanted &= ds.field("date") <= end.isoformat()
        fragments = list(whole.get_fragments(filter=wanted)) if whole is not None else []
    tables = []
    for fragment in sorted(fragments, key=lambda f: f.path):
        name = fragment.path.rsplit("/", 1)[-1]
        if not name.startswith("part-") or not _DATE_IN_PATH.search(fragment.path):
            continue
        try:
            tables.append(fragment.to_table(schema=fragment.physical_schema))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InferenceLogError(
                f"Inference log of '{pipeline}': {fragment.path} is not a readable Parquet file "
                f"({type(exc).__name__}: {exc}). Move it aside (nothing else was skipped) and rerun."
            ) from exc
    table = _concat(tables) if tables else _empty_schema(kind).empty_table()
    frame = table.to_pandas()
    return frame.sort_values(["time", "request_id"], kind="stable", ignore_index=True)


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate files whose value columns may differ in type (int64 here, float64 or text there)."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    types: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for column in table.schema:
            if column.type != pa.null():
                types.setdefault(column.name, set()).add(column.type)
    numeric = (pa.types.is_integer, pa.types.is_floating)
    common = {
        name: pa.float64() if all(any(is_(t) for is_ in numeric) for t in found) else pa.string()
        for name, found in types.items()
        if len(found) > 1
    }
    unified = []
    for table in tables:
        for name, arrow_type in common.items():
            if name in table.column_names:
                index = table.column_names.index(name)
                table = table.set_column(index, name, table[name].cast(arrow_type))
        unified.append(table)
    return pa.concat_tables(unified, promote_options="permissive")


def predictions_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    import pyarrow as pa

    features = dict.fromkeys(feature for row in rows for feature in row[5])
    columns = {
        "time": pa.array([row[0] for row in rows], type=pa.timestamp("us", tz="UTC")),
        "request_id": pa.array([row[1] for row in rows], type=pa.string()),
        "model_version": pa.array([row[2] for row in rows], type=pa.int64()),
        "route": pa.array([row[3] for row in rows], type=pa.string()),
        "prediction": value_column([row[4] for row in rows]),
    }
    for feature in features:
        columns[f"input.{feature}"] = value_column([row[5].get(feature) for row in rows])
    return pa.table(columns)


def feedback_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "time": pa.array([row[0] for row in rows], type=pa.timestamp("us", tz="UTC")),
            "request_id": pa.array([row[1] for row in rows], type=pa.string()),
            "label": value_column([row[2] for row in rows]),
        }
    )


def value_kind(value: Any) -> str:
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        return "float"
    return "str"


def value_column(values: list[Any]) -> pa.Array:
    """Numbers stay numbers (int64, float64) and booleans booleans; any other mix becomes text, never an error."""
    import pyarrow as pa

    types = set(map(type, values))
    types.discard(type(None))
    if types <= {str}:
        return pa.array(values, type=pa.string())
    if types <= {int}:
        kinds = {"int"}
    elif types <= {int, float}:
        kinds = {"float"}
    else:  # numpy scalars, Decimal, dates, a mix...: look at each value
        kinds = {value_kind(value) for value in values if value is not None}
    arrow_type = None
    if kinds == {"int"}:
        arrow_type = pa.int64()
    elif kinds <= {"int", "float"}:
        arrow_type = pa.float64()
    elif kinds == {"bool"}:
        arrow_type = pa.bool_()
    if arrow_type is not None:
        try:
            return pa.array(values, type=arrow_type)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            pass  # e.g. an int beyond int64: keep it as text rather than fail the whole file
    return pa.array([None if value is None else str(value) for value in values], type=pa.string())
