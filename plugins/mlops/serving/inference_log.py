"""The inference log: every prediction served, and the feedback labels sent later, as Parquet files.

Layout under the log's URI (a folder, ``file://`` or an ``s3://`` prefix)::

    <uri>/predictions/pipeline=<name>/date=YYYY-MM-DD/part-<YYYYmmddTHHMMSSffffffZ>-<uuid8>.parquet
    <uri>/feedback/pipeline=<name>/date=YYYY-MM-DD/part-<YYYYmmddTHHMMSSffffffZ>-<uuid8>.parquet

A predictions file has the columns ``time`` (timestamp, UTC), ``request_id``, ``model_version`` (int64),
``route`` (champion, canary, shadow), ``prediction`` and one ``input.<feature>`` per input feature; a feedback
file has ``time``, ``request_id`` and ``label``. A row goes to the partition of its own UTC date. A value column
(prediction, label, an input) is numeric where all its values in the file are numbers, else text.

How a row travels: ``log_predictions`` and ``log_feedback`` only append to memory under a lock, so a server's
event loop can call them. A background thread seals what is buffered into parts (one Parquet file per kind and
date, its name chosen once) and writes each with one atomic write. A part leaves memory only once written: a
failed write keeps it, under the same name, so a retry after an ambiguous failure overwrites rather than
duplicates, and retries come after a growing delay. Past ``max_buffered_rows`` new rows are refused with
:class:`InferenceLogFull` (the server answers 503 and the client retries): memory stays bounded and nothing is
lost silently. With a journal (``journal_dir``, :mod:`mlops.serving.journal`), every row is also appended to a
local file and the server awaits ``wait_durable`` before answering; each flush seals one journal segment,
whose Parquet parts are named after it and which is deleted once they are written; ``start()`` replays what a
dead process left. Without one, ``close()`` gives up on a dead target after its timeout and saves what is left
to a local fallback folder with the same layout (:mod:`mlops.serving.log_parts`), saying where in the log.

>>> log = InferenceLog("fraud", "s3://bucket/fraud/inference")   # doctest: +SKIP
>>> log.start()                                                   # doctest: +SKIP
>>> log.log_predictions([{"time": now, "request_id": "r1", "model_version": 3, "route": "champion",
...                       "inputs": {"amount": 12.5}, "prediction": 0}])  # doctest: +SKIP
>>> log.log_feedback("r1", 1)                                     # doctest: +SKIP
>>> log.close()                                                   # doctest: +SKIP
>>> # reading it back: mlops.data.inference_log.read_inference_log, read_feedback, join_feedback
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import NAME_PATTERN
from mlops.data import storage
from mlops.data.inference_log import (
    FEEDBACK,
    PREDICTION_KEYS,
    PREDICTIONS,
    InferenceLogError,
    inference_log_uri,
)
from mlops.errors import MlopsError
from mlops.serving.journal import Journal, Orphan, encode, journal_folder, part_name, recover
from mlops.serving.log_columns import extra_values
from mlops.serving.log_parts import Chunk, Part, save_to_fallback, serialize_parts

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

__all__ = [
    "InferenceLog",
    "InferenceLogClosed",
    "InferenceLogFull",
]


log = logging.getLogger(__name__)


MAX_RETRY_SECONDS = 30.0


_INT64 = 2**63


class InferenceLogFull(InferenceLogError):
    """The buffer is full (the target is failing or slow): no row of the call was accepted; retry later."""

    code = "INFERENCE_LOG_FULL"

    def __init__(
        self, pipeline: str, uri: str, buffered: int, offered: int, limit: int, last_error: str | None
    ):
        self.pipeline = pipeline
        self.buffered = buffered
        self.offered = offered
        self.limit = limit
        cause = f"; last write error: {last_error}" if last_error else ""
        super().__init__(
            f"Inference log of '{pipeline}' is full: {buffered} rows wait to be written to {uri}, "
            f"max_buffered_rows={limit}, so none of the {offered} new rows was accepted. Retry later{cause}"
        )


class InferenceLogClosed(InferenceLogError):
    """Rows were offered after ``close()``: they were not accepted."""

    code = "INFERENCE_LOG_CLOSED"


class InferenceLog:
    """A thread-safe, bounded buffer of served predictions and feedback labels, flushed to Parquet files.

    Rows are written when ``flush_rows`` are buffered or the oldest has waited ``flush_seconds``, by a
    background thread (``start()``) or by ``flush()``. Appending never does I/O on the caller's thread.

    Args:
        pipeline: the pipeline's name (a partition of the layout).
        uri: folder, ``file://`` URI or ``s3://`` prefix of the log (relative paths are under ``MLOPS_HOME``).
        flush_rows: write as soon as this many rows are buffered.
        flush_seconds: write rows at the latest this long after they were buffered.
        max_buffered_rows: refuse new rows (``InferenceLogFull``) past this many unwritten rows.
        retry_seconds: first delay after a failed write; it doubles up to ~30 s while the target keeps failing.
        journal_dir: a local folder for the crash-safe journal (:mod:`mlops.serving.journal`): each row is
            durable there before ``wait_durable`` returns, and rows a dead process left there are written at
            ``start()``. None: no journal (rows buffered at a crash are lost; ``close()`` saves what it cannot
            write to a fallback folder).
    """

    def __init__(
        self,
        pipeline: str,
        uri: str,
        *,
        flush_rows: int = 1000,
        flush_seconds: float = 5.0,
        max_buffered_rows: int = 100_000,
        retry_seconds: float = 1.0,
        journal_dir: str | Path | None = None,
    ) -> None:
        problems = []
        if not re.match(NAME_PATTERN, pipeline or ""):
            problems.append(f"pipeline '{pipeline}' must match {NAME_PATTERN}")
        if flush_rows < 1 or max_buffered_rows < 1:
            problems.append(
                f"flush_rows ({flush_rows}) and max_buffered_rows ({max_buffered_rows}) must be >= 1"
            )
        if flush_seconds <= 0 or retry_seconds <= 0:
            problems.append(
                f"flush_seconds ({flush_seconds}) and retry_seconds ({retry_seconds}) must be > 0"
            )
        if problems:
            raise InferenceLogError("Invalid inference log settings: " + "; ".join(problems))
        self.pipeline = pipeline
        self.uri = storage.resolve_uri(uri).rstrip("/")
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_buffered_rows = max_buffered_rows
        self.retry_seconds = retry_seconds
        self.fallback_dir: str | None = None
        self.journal_dir = Path(journal_dir) if journal_dir is not None else None
        self._journal: Journal | None = None
        self._orphans: dict[str, Orphan] = {}
        self._segment_chunks: dict[tuple[str, int], int] = {}  # chunks of a journal segment not written yet
        #: What the journal replayed at start: (row id, model version) of predictions, row ids of feedback.
        self.replayed_predictions: list[tuple[str, int]] = []
        self.replayed_feedback: list[str] = []

        self._lock = threading.Lock()  # guards the state below; held only for O(1) work
        self._flush_lock = threading.Lock()  # one writer at a time (the thread, flush(), close())
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._deadline = float("inf")

        self._pending: dict[str, list[tuple[Any, ...]]] = {PREDICTIONS: [], FEEDBACK: []}
        self._pending_rows = 0
        self._pending_since: float | None = None
        self._sealed: list[Chunk] = []
        self._buffered = 0  # pending + sealed rows not yet written: what max_buffered_rows bounds

        self._written_rows = 0
        self._written_files = 0
        self._failed_flushes = 0
        self._rejected_rows = 0
        self._dumped_rows = 0
        self._last_error: str | None = None
        self._failures_in_a_row = 0
        self._retry_at: float | None = None
        atexit.register(_close_at_exit, weakref.ref(self))

    # Appending (the server's side: cheap, no I/O) -----------------------------------------------------------
    def log_predictions(self, rows: Iterable[dict[str, Any]]) -> int | None:
        """Buffer served predictions; all of them or none. Returns the journal ticket (:meth:`wait_durable`).

        Each row: ``{"time": datetime (UTC; naive is taken as UTC), "request_id": str, "model_version": int,
        "inputs": {feature: value}, "prediction": value, "route": "champion" | "canary" | "shadow" | ...}``.
        The ``inputs`` dicts are kept by reference until written: do not change them afterwards.

        Raises:
            InferenceLogFull: the buffer cannot take these rows now (none was accepted; retry later).
            InferenceLogClosed: the log is closed.
            InferenceLogError: a row is malformed (none was accepted).
        """
        records = []
        for index, row in enumerate(rows):
            try:
                when, inputs, version = row["time"], row["inputs"], int(row["model_version"])
                route, prediction = str(row["route"]), row["prediction"]
                record = (when, str(row["request_id"]), version, route, prediction, inputs, extra_values(row))
            except (KeyError, TypeError, ValueError) as exc:
                raise InferenceLogError(
                    f"Inference log of '{self.pipeline}': prediction row {index} is malformed "
                    f"({type(exc).__name__}: {exc}); each row needs the keys {', '.join(PREDICTION_KEYS)}. "
                    "No row of this call was accepted."
                ) from None
            if (
                not isinstance(when, datetime)
                or not isinstance(inputs, dict)
                or not -_INT64 <= version < _INT64
            ):
                raise InferenceLogError(
                    f"Inference log of '{self.pipeline}': prediction row {index} needs 'time' as a datetime "
                    f"(got {type(when).__name__}), 'inputs' as a dict (got {type(inputs).__name__}) and an "
                    f"int64 'model_version' (got {version}). No row of this call was accepted."
                )
            records.append(record)
        return self._append(PREDICTIONS, records)

    def log_feedback(
        self, request_id: str, label: Any, time: datetime | None = None, *, correction: bool = False
    ) -> int | None:
        """Buffer the true label of a served request (``time``: when it was known; default now, UTC;
        ``correction``: it replaces an earlier label, column ``correction``). Returns the journal ticket.

        Raises:
            InferenceLogFull: the buffer is full (the label was not accepted; retry later).
            InferenceLogClosed: the log is closed.
        """
        when = datetime.now(UTC) if time is None else time
        if not isinstance(when, datetime):
            raise InferenceLogError(f"Inference log of '{self.pipeline}': feedback time must be a datetime")
        return self._append(FEEDBACK, [(when, str(request_id), label, {"correction": bool(correction)})])

    async def wait_durable(self, ticket: int | None) -> None:
        """Return once the rows of ``ticket`` are in the journal on disk (at once without a journal).

        Raises:
            JournalError: they cannot be made durable (answer 503: the rows are buffered all the same).
        """
        if ticket is not None and self._journal is not None:
            await self._journal.wait(ticket)

    def _append(self, kind: str, records: list[tuple[Any, ...]]) -> int | None:
        offered = len(records)
        if not offered:
            return None
        journal = self._journal
        lines = encode(kind, records) if journal is not None else b""
        ticket = None
        with self._lock:
            closed, buffered = self._closed, self._buffered
            fits = not closed and buffered + offered <= self.max_buffered_rows
            if fits:
                if journal is not None:
                    ticket = journal.append(lines)  # first: a failing journal takes no row
                before = self._pending_rows
                self._pending[kind].extend(records)
                self._pending_rows += offered
                self._buffered += offered
                if before == 0:
                    self._pending_since = time.monotonic()
            elif not closed:
                self._rejected_rows += offered
            last_error = self._last_error
        if closed:
            raise InferenceLogClosed(
                f"Inference log of '{self.pipeline}' is closed: {offered} new rows were not accepted"
            )
        if not fits:
            if offered > self.max_buffered_rows:
                raise InferenceLogError(
                    f"Inference log of '{self.pipeline}': {offered} rows in one call can never fit in "
                    f"max_buffered_rows={self.max_buffered_rows}; send smaller batches"
                )
            raise InferenceLogFull(
                self.pipeline, self.uri, buffered, offered, self.max_buffered_rows, last_error
            )
        if before < self.flush_rows <= before + offered:
            self._wake.set()
        return ticket

    # Writing -----------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: PipelineConfig) -> InferenceLog:
        """The inference log a pipeline's ``serving.inference_log`` section describes."""
        settings = config.serving.inference_log
        return cls(
            config.name,
            inference_log_uri(config.name, settings.uri),
            flush_rows=settings.flush_rows,
            flush_seconds=settings.flush_seconds,
            max_buffered_rows=settings.max_buffered_rows,
            journal_dir=journal_folder(config) if settings.journal else None,
        )

    def start(self) -> None:
        """Start the background flusher (once; later calls do nothing)."""
        with self._lock:
            if self._closed:
                raise InferenceLogClosed(
                    f"Inference log of '{self.pipeline}' is closed: it cannot start again"
                )
            if self._thread is not None:
                return
            if self.journal_dir is not None and self._journal is None:
                self._journal = Journal(self.journal_dir)
                self._adopt_locked(recover(self.journal_dir, exclude=self._journal.owner))
            self._thread = threading.Thread(
                target=self._run, name=f"inference-log-{self.pipeline}", daemon=True
            )
            self._thread.start()

    def flush(self) -> None:
        """Write everything buffered now, on the caller's thread. Raises nothing: failures go to the log and stats."""
        self._flush_once()

    def close(self, timeout: float = 30) -> None:
        """Write what is left, retrying for up to ``timeout`` seconds, and stop the flusher (idempotent).

        Rows that could still not be written are saved under ``<tempdir>/mlops-inference-fallback/`` in the
        same layout (``fallback_dir``) and the log says so at ERROR: nothing is dropped silently.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._deadline = time.monotonic() + max(timeout, 0)
        if thread is None:
            # Never started: drain on a helper thread all the same, so a hung write cannot block past timeout.
            thread = threading.Thread(
                target=self._drain, name=f"inference-log-{self.pipeline}-close", daemon=True
            )
            thread.start()
        else:
            self._stop.set()
            self._wake.set()
        thread.join(max(timeout, 0))
        with self._lock:
            left = self._buffered
            journal, self._journal = self._journal, None
            orphans, self._orphans = list(self._orphans.values()), {}
        if journal is not None:
            journal.close(keep=bool(left))
            for orphan in orphans:
                orphan.release()
        if left and journal is not None:
            log.error(
                "Inference log of '%s': %d rows could not be written to %s within %ss (last error: %s); they "
                "stay in the journal %s and are written at the server's next start",
                self.pipeline,
                left,
                self.uri,
                timeout,
                self._last_error or "none recorded, a write was still hanging",
                journal.root,
            )
        elif left:
            self._dump_to_fallback(timeout)
        else:
            log.info(
                "Inference log of '%s' closed: %d rows in %d files written to %s",
                self.pipeline,
                self._written_rows,
                self._written_files,
                self.uri,
            )

    def stats(self) -> dict[str, Any]:
        """Counters for metrics and health checks (JSON-able)."""
        with self._lock:
            since = [chunk.since for chunk in self._sealed]
            if self._pending_since is not None:
                since.append(self._pending_since)
            return {
                "buffered_rows": self._buffered,
                "written_rows": self._written_rows,
                "written_files": self._written_files,
                "failed_flushes": self._failed_flushes,
                "last_error": self._last_error,
                "oldest_buffered_age_seconds": round(time.monotonic() - min(since), 3) if since else 0.0,
                "rejected_rows": self._rejected_rows,
                "dumped_rows": self._dumped_rows,
                "fallback_dir": self.fallback_dir,
                "journal": self._journal.stats() if self._journal is not None else None,
            }

    def __enter__(self) -> InferenceLog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        import pyarrow.parquet  # noqa: F401  (loaded now, while idle, rather than during the first flush)

        while not self._stop.is_set():
            self._wake.clear()
            delay = self._seconds_until_due()
            if delay > 0:
                self._wake.wait(delay)
                continue
            self._flush_once()
        self._drain()

    def _seconds_until_due(self) -> float:
        with self._lock:
            now = time.monotonic()
            if self._buffered == 0 or (self._pending_since is None and not self._sealed):
                return self.flush_seconds
            if self._retry_at is not None and now < self._retry_at:
                return self._retry_at - now
            if self._sealed or self._pending_rows >= self.flush_rows:
                return 0.0
            return self._pending_since + self.flush_seconds - now

    def _drain(self) -> None:
        """Flush until empty or past the deadline set by close(), waiting out the retry delay between attempts."""
        while True:
            self._flush_once()
            with self._lock:
                left, retry_at = self._buffered, self._retry_at
            now = time.monotonic()
            if not left or now >= self._deadline:
                return
            time.sleep(min(max((retry_at or now) - now, 0.01), self._deadline - now))
            if time.monotonic() >= self._deadline:
                return

    def _adopt_locked(self, orphans: list[Orphan]) -> None:
        """Queue the rows of dead processes' journals for writing, each segment under its own part names."""
        now = time.monotonic()
        for orphan in orphans:
            self._orphans[orphan.owner] = orphan
            for number, kinds in orphan.segments.items():
                chunks = [Chunk(k, r, now, segment=(orphan.owner, number)) for k, r in kinds.items() if r]
                self._segment_chunks[(orphan.owner, number)] = len(chunks)
                self._sealed.extend(chunks)
                self._buffered += sum(chunk.rows for chunk in chunks)
                for kind, records in kinds.items():
                    if kind == PREDICTIONS:
                        self.replayed_predictions.extend((r[1], r[2]) for r in records)
                    else:
                        self.replayed_feedback.extend(r[1] for r in records)
            orphan.segments = {n: {} for n in orphan.segments}  # the chunks hold the rows now

    def _seal_locked(self) -> None:
        if not self._pending_rows:
            return
        segment = None
        if self._journal is not None:
            segment = (self._journal.owner, self._journal.rotate())
        chunks = [
            Chunk(kind, records, self._pending_since or time.monotonic(), segment=segment)
            for kind, records in self._pending.items()
            if records
        ]
        self._sealed.extend(chunks)
        if segment is not None:
            self._segment_chunks[segment] = len(chunks)
        self._pending = {PREDICTIONS: [], FEEDBACK: []}
        self._pending_rows = 0
        self._pending_since = None

    def _flush_once(self) -> bool:
        with self._flush_lock:
            with self._lock:
                self._seal_locked()
                chunks = list(self._sealed)
            if not chunks:
                return True
            target = self.uri
            try:
                for chunk in chunks:
                    for part in self._parts_of(chunk):
                        if part.written:
                            continue
                        with self._lock:
                            if chunk not in self._sealed:  # close() saved it to the fallback meanwhile
                                break
                        target = storage.join(self.uri, part.relpath)
                        storage.write_bytes(target, part.data)
                        self._mark_written(chunk, part, target)
            except Exception as exc:
                self._record_failure(target, exc)
                return False
            self._record_success()
            return True

    def _parts_of(self, chunk: Chunk) -> list[Part]:
        if chunk.parts is None:
            name = part_name(*chunk.segment) if chunk.segment is not None else None
            chunk.parts = serialize_parts(self.pipeline, chunk.kind, chunk.records or [], name)
            chunk.records = None  # the bytes are much smaller than the rows
        return chunk.parts

    def _mark_written(self, chunk: Chunk, part: Part, target: str) -> None:
        with self._lock:
            part.written = True
            kept = chunk in self._sealed
            if kept:
                chunk.remaining -= part.rows
                self._buffered -= part.rows
                self._written_rows += part.rows
                self._written_files += 1
                if chunk.remaining == 0:
                    self._sealed.remove(chunk)
                    self._segment_done_locked(chunk)
        if not kept:
            log.warning(
                "Inference log of '%s': %d rows were written to %s after close() had saved them to the "
                "fallback %s; do not restore that file from the fallback (it would duplicate them)",
                self.pipeline,
                part.rows,
                target,
                self.fallback_dir,
            )

    def _segment_done_locked(self, chunk: Chunk) -> None:
        """Once every chunk of a journal segment is written, the segment goes (ours, or an adopted one)."""
        if chunk.segment is None:
            return
        left = self._segment_chunks[chunk.segment] - 1
        if left:
            self._segment_chunks[chunk.segment] = left
            return
        del self._segment_chunks[chunk.segment]
        owner, number = chunk.segment
        if self._journal is not None and owner == self._journal.owner:
            self._journal.discard(number)
        elif owner in self._orphans:
            self._orphans[owner].done(number)
            if self._orphans[owner].lock_fd < 0:
                del self._orphans[owner]

    def _record_failure(self, target: str, exc: Exception) -> None:
        with self._lock:
            self._failed_flushes += 1
            self._failures_in_a_row += 1
            exponent = min(self._failures_in_a_row - 1, 16)
            delay = min(self.retry_seconds * 2**exponent, max(MAX_RETRY_SECONDS, self.retry_seconds))
            self._retry_at = time.monotonic() + delay
            self._last_error = f"{type(exc).__name__}: {exc}"
            buffered, attempt = self._buffered, self._failures_in_a_row
        expected = isinstance(exc, (MlopsError, OSError))
        log.error(
            "Inference log of '%s': cannot write to %s (%s); %d rows stay buffered, attempt %d failed, "
            "next in %.1fs",
            self.pipeline,
            target,
            self._last_error,
            buffered,
            attempt,
            delay,
            exc_info=None if expected else exc,
        )

    def _record_success(self) -> None:
        with self._lock:
            failures, self._failures_in_a_row, self._retry_at = self._failures_in_a_row, 0, None
        if failures:
            log.warning(
                "Inference log of '%s': writing to %s again after %d failed attempts",
                self.pipeline,
                self.uri,
                failures,
            )

    def _dump_to_fallback(self, timeout: float) -> None:
        with self._lock:
            self._seal_locked()
            chunks, self._sealed = self._sealed, []
            left, self._buffered = self._buffered, 0
            self._dumped_rows += left
            last_error = self._last_error
        folder, lost = save_to_fallback(self.pipeline, chunks)
        self.fallback_dir = str(folder)
        log.error(
            "Inference log of '%s': %d rows could not be written to %s within %ss (last error: %s); saved %d of "
            "them to the fallback %s (same layout: copy its contents into %s to restore them)%s",
            self.pipeline,
            left,
            self.uri,
            timeout,
            last_error or "none recorded, a write was still hanging",
            left - lost,
            folder,
            self.uri,
            f"; {lost} rows are LOST" if lost else "",
        )


def _close_at_exit(ref: weakref.ReferenceType[InferenceLog]) -> None:
    if (inference_log := ref()) is not None:
        inference_log.close()
