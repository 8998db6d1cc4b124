"""The files the inference log writes: a buffered chunk's Parquet parts (one per UTC date, named once), and the
JSON-lines last resort of ``close()``'s fallback."""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from mlops.data import storage
from mlops.data.inference_log import PREDICTIONS, feedback_table, predictions_table
from mlops.serving.log_columns import with_extra_columns

__all__ = ["Chunk", "Part", "save_to_fallback", "serialize_parts"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Part:
    """One Parquet file to write: its path under the log's URI, its bytes and its row count."""

    relpath: str
    rows: int
    data: bytes
    written: bool = False


def serialize_parts(
    pipeline: str, kind: str, records: list[tuple[Any, ...]], name: str | None = None
) -> list[Part]:
    """One Parquet file per UTC date of the rows, each named once and for all (``name``: in every date)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    by_date: dict[date, list[tuple[Any, ...]]] = {}
    for record in records:
        when = record[0]
        day = when.date() if when.tzinfo is None else when.astimezone(UTC).date()
        by_date.setdefault(day, []).append(record)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    parts = []
    for day in sorted(by_date):
        rows = by_date[day]
        table = predictions_table(rows) if kind == PREDICTIONS else feedback_table(rows)
        table = with_extra_columns(table, rows)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        file = name or f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        parts.append(
            Part(
                f"{kind}/pipeline={pipeline}/date={day.isoformat()}/{file}",
                len(rows),
                sink.getvalue().to_pybytes(),
            )
        )
    return parts


def dump_as_json_lines(path: Path, records: list[tuple[Any, ...]] | None, rows: int, exc: Exception) -> int:
    """Last resort when a chunk cannot become Parquet: JSON lines. Returns the number of rows lost."""
    log.error("Inference log: cannot save %d rows as Parquet (%s); trying JSON lines at %s", rows, exc, path)
    if records is None:
        return rows
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(list(record), default=str) + "\n" for record in records))
    except Exception:
        log.exception("Inference log: %d rows are LOST: they could not be saved to %s either", rows, path)
        return rows
    return 0


@dataclass(eq=False)
class Chunk:
    """Rows taken from the buffer together; serialized once into parts, kept until every part is written."""

    kind: str
    records: list[tuple[Any, ...]] | None
    since: float  # monotonic time its oldest row was buffered
    rows: int = 0
    remaining: int = 0
    parts: list[Part] | None = field(default=None)
    #: Its journal segment (owner, number): its parts are named after it, and it is deleted once they are written.
    segment: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        self.rows = self.remaining = len(self.records or ())


def save_to_fallback(pipeline: str, chunks: list[Chunk]) -> tuple[Path, int]:
    """Save the unwritten parts of ``chunks`` to a new local folder (same layout as the log), JSON lines where
    Parquet fails. Returns the folder and the number of rows that could not be saved at all."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = Path(tempfile.gettempdir()) / "mlops-inference-fallback" / f"{pipeline}-{stamp}"
    lost = 0
    for index, chunk in enumerate(chunks):
        # Records before parts: the writer sets the parts first and only then drops the records.
        records, parts = chunk.records, chunk.parts
        try:
            if parts is None:
                parts = serialize_parts(pipeline, chunk.kind, records or [])
            for part in parts:
                if not part.written:
                    storage.write_bytes(str(folder / part.relpath), part.data)
        except Exception as exc:
            jsonl = folder / f"{chunk.kind}-{index}.jsonl"
            lost += dump_as_json_lines(jsonl, records, chunk.remaining, exc)
    return folder, lost
