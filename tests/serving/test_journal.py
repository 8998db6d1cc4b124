"""The inference log's crash-safe journal: group commit, replay of a dead process's rows (once, under the same
part names), torn and damaged lines, a failing disk, and the answered ids a crash must not forget."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops.data.inference_log import read_feedback, read_inference_log
from mlops.serving import journal as journal_module
from mlops.serving.feedback import AnsweredIds
from mlops.serving.inference_log import InferenceLog
from mlops.serving.journal import Journal, JournalError, recover

pytestmark = pytest.mark.unit
T0 = datetime(2026, 3, 4, 23, 59, 59, 999000, tzinfo=UTC)


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Rows across midnight (two date partitions), integer and text inputs, a missing value."""
    return [
        {
            "time": T0 + timedelta(milliseconds=i),
            "request_id": f"r{start + i}",
            "model_version": 3,
            "route": "champion",
            "inputs": {"amount": float(start + i), "country": "fr" if i % 2 else "007", "age": None},
            "prediction": (start + i) % 2,
            "correlation_id": f"c{i}",
            "out_of_range": i == 1,
        }
        for i in range(n)
    ]


def crash(log: InferenceLog) -> None:
    """What SIGKILL leaves: the journal's files as they are on disk, its lock released, no flush, no close."""
    journal = log._journal
    assert journal is not None
    with journal._cond:
        journal._stopping = True
        journal._cond.notify()
    journal._thread.join()
    os.close(journal._lock_fd)
    journal._lock_fd = -1
    log._stop.set()
    log._wake.set()
    log._closed = True


def parts(uri: Path) -> list[Path]:
    return sorted(uri.rglob("part-*.parquet"))


def test_rows_are_durable_in_groups_before_they_are_written(tmp_path: Path) -> None:
    log = InferenceLog("fraud", str(tmp_path / "log"), flush_seconds=3600, journal_dir=tmp_path / "journal")
    log.start()

    async def serve() -> list[int | None]:
        async def one(i: int) -> int | None:
            ticket = log.log_predictions(rows(1, start=i))
            await log.wait_durable(ticket)
            return ticket

        return await asyncio.gather(*(one(i) for i in range(300)))

    tickets = asyncio.run(serve())
    journal = log._journal
    assert journal is not None
    stats = journal.stats()
    assert sorted(tickets) == list(range(1, 301))
    assert stats["lines"] == 300 and stats["error"] is None
    assert stats["commits"] < 300  # grouped: one fsync for many requests
    segment = journal.folder / "seg-00000001.jsonl"
    assert segment.read_bytes().count(b"\n") == 300
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.folder.stat().st_mode) == 0o700
    assert not parts(tmp_path / "log")  # nothing flushed yet: the journal is all there is

    log.close()
    assert len(read_inference_log(str(tmp_path / "log"), "fraud")) == 300
    assert not any((tmp_path / "journal").iterdir())  # every row written: the journal is empty


def test_a_crash_loses_nothing_and_a_second_replay_duplicates_nothing(tmp_path: Path) -> None:
    uri, folder = tmp_path / "log", tmp_path / "journal"
    first = InferenceLog("fraud", str(uri), flush_seconds=3600, journal_dir=folder)
    first.start()
    for i in range(5):
        asyncio.run(first.wait_durable(first.log_predictions(rows(1, start=i))))
    asyncio.run(first.wait_durable(first.log_feedback("r2", 1, time=T0 + timedelta(seconds=3))))
    first.flush()  # segment 1 written to Parquet and discarded ...
    asyncio.run(first.wait_durable(first.log_predictions(rows(3, start=10))))  # ... segment 2 only journaled
    crash(first)
    assert len(read_inference_log(str(uri), "fraud")) == 5

    # The crash came after the Parquet write of segment 2 and before its deletion: simulate by replaying twice.
    orphaned = next(p for p in folder.iterdir() if p.is_dir())
    saved = {p.name: p.read_bytes() for p in orphaned.iterdir() if p.name.startswith("seg-")}
    second = InferenceLog("fraud", str(uri), flush_seconds=3600, journal_dir=folder)
    second.start()
    assert sorted(r for r, _ in second.replayed_predictions) == ["r10", "r11", "r12"]
    second.close()
    orphaned.mkdir()
    (orphaned / "lock").touch()
    for name, data in saved.items():
        (orphaned / name).write_bytes(data)
    third = InferenceLog("fraud", str(uri), flush_seconds=3600, journal_dir=folder)
    third.start()
    assert len(third.replayed_predictions) == 3
    third.close()

    served = read_inference_log(str(uri), "fraud")
    assert sorted(served["request_id"]) == sorted([f"r{i}" for i in range(5)] + ["r10", "r11", "r12"])
    replayed = served.set_index("request_id").loc["r11"]
    assert replayed["input.country"] == "fr" and replayed["correlation_id"] == "c1"
    assert bool(replayed["out_of_range"]) and replayed["time"] == T0 + timedelta(milliseconds=1)
    assert read_feedback(str(uri), "fraud")["request_id"].tolist() == ["r2"]
    assert not any(folder.iterdir())


def test_a_live_owner_is_never_adopted(tmp_path: Path) -> None:
    running = Journal(tmp_path)
    running.wait_sync(running.append(b'["f","2026-03-04T00:00:00+00:00","r1",1,{}]\n'))
    assert recover(tmp_path) == []  # its lock is held: another process's rows are left alone
    running.close(keep=True)
    (orphan,) = recover(tmp_path)
    assert orphan.rows() == 1
    orphan.release()


def test_a_torn_last_line_is_skipped_and_a_damaged_line_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path)
    good = b'["f","2026-03-04T00:00:00+00:00","r1",1,{"correction":false}]\n'
    journal.wait_sync(journal.append(good + b"{not json}\n" + good.replace(b"r1", b"r2")))
    journal.close(keep=True)
    segment = journal.folder / "seg-00000001.jsonl"
    with segment.open("ab") as file:
        file.write(b'["p","2026-03-04T00:')  # the write a SIGKILL cut short, never acknowledged

    (orphan,) = recover(tmp_path)
    assert [r[1] for r in orphan.segments[1]["feedback"]] == ["r1", "r2"]
    assert orphan.skipped_lines == 2
    assert "partial line" in caplog.text and "1 damaged lines" in caplog.text
    assert (tmp_path / "damaged" / f"{journal.owner}-seg-00000001.jsonl").read_bytes().count(
        b"{not json}"
    ) == 1
    orphan.release()


def test_a_failing_disk_refuses_rows_instead_of_answering_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = InferenceLog("fraud", str(tmp_path / "log"), flush_seconds=3600, journal_dir=tmp_path / "journal")
    log.start()

    def full_disk(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module, "_write_all", full_disk)
    ticket = log.log_predictions(rows(1))
    with pytest.raises(JournalError, match="No space left on device"):
        asyncio.run(log.wait_durable(ticket))
    with pytest.raises(JournalError, match="503"):
        log.log_predictions(rows(1, start=1))  # refused: never buffered, so never logged as if answered
    monkeypatch.undo()
    log.close()
    assert read_inference_log(str(tmp_path / "log"), "fraud")["request_id"].tolist() == ["r0"]


def test_replayed_rows_can_still_get_their_labels(tmp_path: Path) -> None:
    log = InferenceLog("fraud", str(tmp_path / "log"), flush_seconds=3600, journal_dir=tmp_path / "j")
    log.start()
    batch = rows(3, start=0)
    for i, row in enumerate(batch):
        row["request_id"] = f"abc:{i}"
    asyncio.run(log.wait_durable(log.log_predictions([*batch, *rows(1, start=7)])))
    asyncio.run(log.wait_durable(log.log_feedback("abc:1", 0)))
    crash(log)

    after = InferenceLog("fraud", str(tmp_path / "log"), flush_seconds=3600, journal_dir=tmp_path / "j")
    after.start()
    answered = AnsweredIds(100)
    answered.restore(after.replayed_predictions, after.replayed_feedback)
    after.close()
    assert answered.resolve("abc:2")[1].rows == 3 and answered.resolve("r7")[1].version == 3
    assert answered.is_labelled("abc:1") and not answered.is_labelled("abc:0")
