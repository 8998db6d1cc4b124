"""The inference log's crash-safe journal: a served row is on the local disk before its answer leaves.

Every row the model server logs (a prediction or a feedback label) is also appended, as one JSON line, to a
local append-only file, and the request is answered only once that line is durable (``fsync``). One writer
thread commits in groups: it takes every line queued since its last commit and writes them with one ``write`` to a
file opened ``O_DSYNC`` (the call returns once the data is on disk). Requests that arrive while a commit runs wait for the next one, so a
busy server pays one synchronous write per group (about 0.2 ms on this kind of disk), not one per request, and
the requests of a group wait on one shared future.

Layout, under the journal folder (``serving.inference_log.journal_dir``, default
``<MLOPS_HOME>/journal/<pipeline>``)::

    <folder>/<owner>/lock                   held (flock) by the process writing this owner's segments
    <folder>/<owner>/seg-00000001.jsonl     the rows of one flush of the inference log, in order

``<owner>`` is a fresh id per process (``<UTC time>-<8 hex>``), so several server processes can share the folder.
The inference log seals its buffer into one *segment* per flush (:meth:`Journal.rotate`); once every row of a
segment is in its Parquet parts, the segment is deleted (:meth:`Journal.discard`). The journal is therefore
small: what has not reached the inference log's target yet.

At start, :func:`recover` adopts the folders of owners that are gone (their lock is free: the process died or
closed with rows it could not write) and returns their rows; the inference log writes them under part names
derived from the owner and segment (:func:`part_name`), so a replay after a crash that came between the Parquet
write and the segment's deletion overwrites the same files instead of duplicating rows.

A line that is cut short at the end of a segment is the request a crash interrupted before its ``fsync``: it was
never answered and is skipped (a WARNING says so). A damaged line anywhere else is kept: the segment is copied
to ``<folder>/damaged/`` and an ERROR names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import settings
from mlops.data.inference_log import FEEDBACK, PREDICTIONS, InferenceLogError

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

__all__ = ["Journal", "JournalError", "Orphan", "encode", "journal_folder", "part_name", "recover"]

log = logging.getLogger(__name__)

#: Longest a request waits for its rows to be durable before it gets 503.
WAIT_SECONDS = 10.0

_SEGMENT = re.compile(r"^seg-(\d{8})\.jsonl$")
_OWNER = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
_LOCK = "lock"
_KIND_CODES = {PREDICTIONS: "p", FEEDBACK: "f"}
_KINDS = {code: kind for kind, code in _KIND_CODES.items()}


class JournalError(InferenceLogError):
    """The journal cannot make rows durable (a full or failing disk): requests get 503 until the server restarts."""

    code = "INFERENCE_JOURNAL_FAILED"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    return str(value)


def encode(kind: str, records: Iterable[tuple[Any, ...]]) -> bytes:
    """The journal lines of rows as the inference log buffers them (``(time, request_id, ...)`` tuples)."""
    code = _KIND_CODES[kind]
    return b"".join(
        (
            json.dumps([code, record[0].isoformat(), *record[1:]], separators=(",", ":"), default=_plain)
            + "\n"
        ).encode()
        for record in records
    )


def _decode(line: bytes) -> tuple[str, tuple[Any, ...]]:
    code, when, *rest = json.loads(line)
    return _KINDS[code], (datetime.fromisoformat(when), *rest)


def part_name(owner: str, segment: int) -> str:
    """The Parquet part name of a journaled segment's rows: the same on every replay."""
    return f"part-{owner}-s{segment:08d}.parquet"


def journal_folder(config: PipelineConfig) -> Path:
    """The journal folder of a pipeline's model server: ``serving.inference_log.journal_dir`` or
    ``<MLOPS_HOME>/journal/<name>``."""
    folder = config.serving.inference_log.journal_dir
    if folder is None:
        return settings.mlops_home() / "journal" / config.name
    path = Path(folder).expanduser()
    return path if path.is_absolute() else settings.mlops_home() / path


@dataclass
class Orphan:
    """The segments of an owner that is gone, adopted (its lock held) until every row is written."""

    owner: str
    folder: Path
    lock_fd: int
    segments: dict[int, dict[str, list[tuple[Any, ...]]]] = field(default_factory=dict)
    skipped_lines: int = 0

    def rows(self) -> int:
        return sum(len(records) for kinds in self.segments.values() for records in kinds.values())

    def done(self, segment: int) -> None:
        """A segment's rows are written: delete its file; the last one releases and removes the folder."""
        self.segments.pop(segment, None)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"seg-{segment:08d}.jsonl").unlink()
        if not self.segments:
            self.release(remove=True)

    def release(self, *, remove: bool = False) -> None:
        if self.lock_fd < 0:
            return
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self.lock_fd)
        self.lock_fd = -1


def _lock(folder: Path, *, create: bool) -> int | None:
    """An exclusive flock on ``folder/lock`` (its fd), or None when another process holds it."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(folder / _LOCK, flags, 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def recover(root: str | Path, *, exclude: str | None = None) -> list[Orphan]:
    """Adopt the journal folders under ``root`` whose process is gone, and read their rows."""
    root = Path(root)
    if not root.is_dir():
        return []
    orphans = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or not _OWNER.match(folder.name) or folder.name == exclude:
            continue
        fd = _lock(folder, create=False)
        if fd is None:
            continue  # alive (or not a journal folder)
        orphan = Orphan(folder.name, folder, fd)
        for path in sorted(folder.iterdir()):
            match = _SEGMENT.match(path.name)
            if match:
                orphan.segments[int(match.group(1))], skipped = _read_segment(root, path)
                orphan.skipped_lines += skipped
        orphan.segments = {n: kinds for n, kinds in orphan.segments.items() if any(kinds.values())}
        for path in folder.glob("seg-*.jsonl"):
            match = _SEGMENT.match(path.name)
            if match and int(match.group(1)) not in orphan.segments:
                path.unlink()  # nothing (durable) in it
        if orphan.segments:
            log.warning(
                "Inference journal: %d rows of %s were not in the inference log yet (the server stopped before "
                "writing them); writing them now",
                orphan.rows(),
                folder,
            )
            orphans.append(orphan)
        else:
            orphan.release(remove=True)
    return orphans


def _read_segment(root: Path, path: Path) -> tuple[dict[str, list[tuple[Any, ...]]], int]:
    data = path.read_bytes()
    kinds: dict[str, list[tuple[Any, ...]]] = {PREDICTIONS: [], FEEDBACK: []}
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a complete line
    if tail:
        log.warning(
            "Inference journal %s ends with a partial line (%d bytes): a request cut short by a crash before "
            "its answer; skipped",
            path,
            len(tail),
        )
    damaged = 0
    for line in lines:
        try:
            kind, record = _decode(line)
        except (ValueError, TypeError, KeyError):
            damaged += 1
            continue
        kinds[kind].append(record)
    if damaged:
        keep = root / "damaged" / f"{path.parent.name}-{path.name}"
        keep.parent.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(path, keep)
        log.error(
            "Inference journal %s: %d damaged lines could not be read; the segment is kept as %s",
            path,
            damaged,
            keep,
        )
    return kinds, damaged + (1 if tail else 0)


class Journal:
    """This process's journal: append lines (under the inference log's lock), then await their durability.

    Args:
        root: the journal folder (created ``0700``); this process writes in a fresh ``<owner>`` folder under it.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.owner = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self.folder = self.root / self.owner
        self.folder.mkdir(mode=0o700)
        _sync_folder(self.root)
        fd = _lock(self.folder, create=True)
        if fd is None:  # pragma: no cover - a fresh folder nobody else knows
            raise JournalError(f"Inference journal: cannot lock {self.folder}")
        self._lock_fd = fd
        self._cond = threading.Condition()
        self._queue: list[tuple[int, bytes]] = []
        self._discards: list[int] = []
        self._segment = 1
        self._seq = 0
        self._synced = 0
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._files: dict[int, int] = {}
        self._error: JournalError | None = None
        self._stopping = False
        self.commits = 0
        self.synced_lines = 0
        self._thread = threading.Thread(target=self._run, name=f"inference-journal-{self.owner}", daemon=True)
        self._thread.start()

    # The inference log's side --------------------------------------------------------------------------------
    def append(self, data: bytes) -> int:
        """Queue lines for the current segment; returns the ticket to wait for. Call under the log's lock."""
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._stopping:
                raise JournalError(f"Inference journal {self.folder} is closed")
            self._seq += 1
            self._queue.append((self._segment, data))
            self._cond.notify()
            return self._seq

    def rotate(self) -> int:
        """Start a new segment; returns the one just ended (what the log's flush sealed)."""
        with self._cond:
            ended = self._segment
            self._segment += 1
            return ended

    def discard(self, segment: int) -> None:
        """Every row of ``segment`` is in the inference log's target: delete it (after its lines are written)."""
        with self._cond:
            self._discards.append(segment)
            self._cond.notify()

    async def wait(self, ticket: int, timeout: float = WAIT_SECONDS) -> None:
        """Return once the lines of ``ticket`` are durable; raises :class:`JournalError` when they cannot be."""
        if ticket <= self._synced:
            return
        loop = asyncio.get_running_loop()
        with self._cond:
            if ticket <= self._synced:
                return
            if self._error is not None:
                raise self._error
            # Requests share one future per commit group: the last one waits for everything queued so far.
            last = self._waiters[-1] if self._waiters else None
            if last is not None and last[1] is loop and last[0] >= ticket and not last[2].done():
                future = last[2]
            else:
                future = loop.create_future()
                self._waiters.append((self._seq, loop, future))
                timer = loop.call_later(timeout, _expire, future, self.folder, timeout)
                future.add_done_callback(lambda _: timer.cancel())
        await asyncio.shield(future)

    def wait_sync(self, ticket: int, timeout: float = WAIT_SECONDS) -> None:
        """:meth:`wait` for threads without an event loop."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: ticket <= self._synced or self._error is not None, timeout=timeout
            ):
                raise JournalError(f"Inference journal {self.folder}: not durable after {timeout:g}s")
            if ticket > self._synced and self._error is not None:
                raise self._error

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "folder": str(self.folder),
                "commits": self.commits,
                "lines": self.synced_lines,
                "segments_open": len(self._files),
                "error": str(self._error) if self._error else None,
            }

    @property
    def error(self) -> JournalError | None:
        return self._error

    def close(self, *, keep: bool) -> None:
        """Write what is queued and stop; ``keep=False`` (every row is in the log's target) removes the folder,
        ``keep=True`` leaves it for the next start to replay."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
        if not keep:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # The writer thread ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._discards and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._queue and not self._discards:
                    return
                batch, self._queue = self._queue, []
                discards, self._discards = self._discards, []
                upto = self._seq
            if batch:
                self._commit(batch, upto)
            for segment in discards:
                fd = self._files.pop(segment, None)
                if fd is not None:
                    os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / f"seg-{segment:08d}.jsonl").unlink()

    def _commit(self, batch: list[tuple[int, bytes]], upto: int) -> None:
        by_segment: dict[int, list[bytes]] = {}
        for segment, data in batch:
            by_segment.setdefault(segment, []).append(data)
        try:
            if self._error is not None:
                raise self._error
            created = False
            for segment, chunks in by_segment.items():
                fd = self._files.get(segment)
                if fd is None:
                    path = self.folder / f"seg-{segment:08d}.jsonl"
                    # O_DSYNC: each write returns once its data is on disk (one syscall per commit, not two).
                    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_DSYNC
                    fd = self._files[segment] = os.open(path, flags, 0o600)
                    created = True
                _write_all(fd, b"".join(chunks))
            for segment in [s for s in self._files if s < min(by_segment)]:
                os.close(self._files.pop(segment))  # an ended segment: its lines are all written
            if created:
                _sync_folder(self.folder)
        except OSError as exc:
            error = JournalError(
                f"Inference journal {self.folder} cannot make rows durable ({type(exc).__name__}: {exc}); "
                "requests get 503 until the model server restarts"
            )
            log.error("%s", error)
            with self._cond:
                self._error = error
                waiters, self._waiters = self._waiters, []
                self._cond.notify_all()
            _settle(waiters, error)
            return
        except JournalError as error:
            with self._cond:
                waiters, self._waiters = self._waiters, []
            _settle(waiters, error)
            return
        with self._cond:
            self._synced = upto
            self.commits += 1
            self.synced_lines += len(batch)
            ready = [w for w in self._waiters if w[0] <= upto]
            if ready:
                self._waiters = [w for w in self._waiters if w[0] > upto]
            self._cond.notify_all()
        _settle(ready, None)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (durable on return: the segments are opened ``O_DSYNC``)."""
    written = os.write(fd, data)
    while written < len(data):  # a short write: rare, but allowed by POSIX
        written += os.write(fd, data[written:])


def _expire(future: asyncio.Future[None], folder: Path, timeout: float) -> None:
    if not future.done():
        future.set_exception(
            JournalError(
                f"Inference journal {folder}: the rows were not durable after {timeout:g}s (a stalled disk?)"
            )
        )


def _sync_folder(folder: Path) -> None:
    """Make a new file's name durable too (its folder's entry)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _settle(
    waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]], error: Exception | None
) -> None:
    """Resolve the waiters' futures on their own loops: one callback per loop, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, loop, future in waiters:
        by_loop.setdefault(loop, []).append(future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, futures, error)


def _resolve(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
