"""The inference log: flushes by size and time, date partitions, backpressure, failures and recovery (local
and a real S3 API on moto), close() and its fallback, reading back and joining feedback."""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlops.data.inference_log import (
    InferenceLogError,
    inference_log_uri,
    join_feedback,
    read_feedback,
    read_inference_log,
)
from mlops.errors import MlopsError
from mlops.serving.inference_log import InferenceLog, InferenceLogClosed, InferenceLogFull

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def rows(
    n: int, start: int = 0, when: datetime = T0, route: str = "champion", version: int = 3
) -> list[dict]:
    return [
        {
            "time": when + timedelta(milliseconds=start + i),
            "request_id": f"r{start + i}",
            "model_version": version,
            "route": route,
            "inputs": {"amount": float(start + i), "country": "fr"},
            "prediction": (start + i) % 2,
        }
        for i in range(n)
    ]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def fallback_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep close()'s fallback files inside the test's own folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def make_log() -> Iterator[Callable[..., InferenceLog]]:
    """Build logs that are always closed at the end of the test (a leftover thread would outlive it)."""
    made: list[InferenceLog] = []

    def make(uri: str, pipeline: str = "fraud", **kwargs: Any) -> InferenceLog:
        made.append(InferenceLog(pipeline, uri, **kwargs))
        return made[-1]

    yield make
    for inference_log in made:
        inference_log.close(timeout=1)


@pytest.fixture
def blocked(tmp_path: Path) -> tuple[Path, str]:
    """A regular file and a log URI under it: mkdir fails there (even as root) until the file is removed."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    return blocker, str(blocker / "inference")


# Flushing by size and by time ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_flush_by_size(tmp_path: Path, make_log: Callable[..., InferenceLog]) -> None:
    inference_log = make_log(str(tmp_path), flush_rows=100, flush_seconds=60)
    inference_log.start()
    inference_log.log_predictions(rows(99))
    time.sleep(0.3)
    assert inference_log.stats()["written_rows"] == 0
    inference_log.log_predictions(rows(1, start=99))
    wait_for(lambda: inference_log.stats()["written_rows"] == 100)
    assert inference_log.stats()["written_files"] == 1

    frame = read_inference_log(str(tmp_path), "fraud")
    assert list(frame.columns) == [
        "time",
        "request_id",
        "model_version",
        "route",
        "prediction",
        "input.amount",
        "input.country",
    ]
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"
    assert frame["model_version"].dtype == "int64" and frame["prediction"].dtype == "int64"
    assert frame["input.amount"].dtype == "float64" and set(frame["input.country"]) == {"fr"}
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(100)]


@pytest.mark.unit
def test_flush_by_time(tmp_path: Path, make_log: Callable[..., InferenceLog]) -> None:
    inference_log = make_log(str(tmp_path), flush_rows=1000, flush_seconds=0.5)
    inference_log.start()
    began = time.monotonic()
    inference_log.log_predictions(rows(5))
    inference_log.log_feedback("r1", 1)
    assert inference_log.stats()["buffered_rows"] == 6
    wait_for(lambda: inference_log.stats()["written_rows"] == 6)
    assert time.monotonic() - began >= 0.45
    assert inference_log.stats()["written_files"] == 2  # one predictions file, one feedback file
    assert inference_log.stats()["oldest_buffered_age_seconds"] == 0.0


# Layout, partitions, types ------------------------------------------------------------------------------------
@pytest.mark.unit
def test_rows_go_to_the_partition_of_their_utc_date(
    tmp_path: Path, make_log: Callable[..., InferenceLog]
) -> None:
    late_in_brazil = datetime(
        2026, 3, 4, 23, 30, tzinfo=timezone(timedelta(hours=-3))
    )  # 2026-03-05 02:30 UTC
    inference_log = make_log(str(tmp_path))
    inference_log.log_predictions(rows(3) + rows(2, start=3, when=late_in_brazil))
    inference_log.flush()

    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "predictions/pipeline=fraud/date=2026-03-04",
        "predictions/pipeline=fraud/date=2026-03-05",
    ]
    assert all(f.rsplit("/", 1)[1].startswith("part-2") for f in files)
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind by the atomic writes

    assert read_inference_log(str(tmp_path), "fraud", start=date(2026, 3, 5))["request_id"].tolist() == [
        "r3",
        "r4",
    ]
    day_one = read_inference_log(str(tmp_path), "fraud", start=date(2026, 3, 4), end=date(2026, 3, 4))
    assert day_one["request_id"].tolist() == ["r0", "r1", "r2"]
    assert read_inference_log(str(tmp_path), "fraud").iloc[3]["time"] == datetime(
        2026, 3, 5, 2, 30, 0, 3000, tzinfo=UTC
    )
    assert read_inference_log(str(tmp_path), "other").empty


@pytest.mark.unit
def test_value_columns_keep_one_type_per_file_and_read_back_across_files(
    tmp_path: Path, make_log: Callable[..., InferenceLog]
) -> None:
    inference_log = make_log(str(tmp_path))
    inference_log.log_predictions(rows(2))
    inference_log.flush()  # file 1: prediction int64
    mixed = rows(3, start=2)
    mixed[0]["prediction"], mixed[1]["prediction"], mixed[2]["prediction"] = "spam", 1, None
    mixed[0]["inputs"] = {"amount": "n/a", "big": 2**70, "extra": True}
    inference_log.log_predictions(mixed)
    inference_log.flush()  # file 2: text where values are mixed or beyond int64

    frame = read_inference_log(str(tmp_path), "fraud")
    assert frame["prediction"].tolist() == ["0", "1", "spam", "1", None]
    assert frame["input.amount"].tolist() == ["0", "1", "n/a", "3.0", "4.0"]
    assert frame["input.big"].tolist()[2:] == [str(2**70), None, None]
    assert frame["input.extra"].tolist()[2:] == [True, None, None]


# Round trip with feedback ------------------------------------------------------------------------------------
@pytest.mark.unit
def test_round_trip_and_feedback_join(tmp_path: Path, make_log: Callable[..., InferenceLog]) -> None:
    inference_log = make_log(str(tmp_path))
    inference_log.log_predictions(rows(3) + rows(1, route="shadow", version=4))  # r0 served twice (shadow)
    inference_log.log_feedback("r0", 0, time=T0 + timedelta(hours=1))
    inference_log.log_feedback("r0", 1, time=T0 + timedelta(hours=2), correction=True)  # the latest wins
    inference_log.log_feedback("r2", 0, time=T0 + timedelta(days=1))
    inference_log.flush()

    predictions = read_inference_log(str(tmp_path), "fraud")
    feedback = read_feedback(str(tmp_path), "fraud")
    assert len(predictions) == 4 and len(feedback) == 3
    assert list(feedback.columns) == ["time", "request_id", "label", "correction"]
    assert feedback["correction"].tolist() == [False, True, False]
    joined = join_feedback(predictions, feedback)
    assert len(joined) == 4
    labels = {(row.request_id, row.route): row.label for row in joined.itertuples()}
    assert labels[("r0", "champion")] == 1 and labels[("r0", "shadow")] == 1
    assert labels[("r2", "champion")] == 0
    assert joined.loc[joined["request_id"] == "r1", "label"].isna().all()
    assert joined.loc[joined["request_id"] == "r0", "model_version"].tolist() == [3, 4]

    empty = join_feedback(predictions, read_feedback(str(tmp_path / "nothing"), "fraud"))
    assert len(empty) == 4 and empty["label"].isna().all()


@pytest.mark.unit
def test_default_uri_is_under_the_store(mlops_home: Path) -> None:
    assert inference_log_uri("fraud") == (mlops_home / "store").as_uri() + "/fraud/inference"
    assert inference_log_uri("fraud", "s3://b/x") == "s3://b/x"


# Backpressure ------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_full_buffer_refuses_the_whole_call(tmp_path: Path, make_log: Callable[..., InferenceLog]) -> None:
    inference_log = make_log(str(tmp_path), max_buffered_rows=10)
    inference_log.log_predictions(rows(7))
    inference_log.log_feedback("r0", 1)
    with pytest.raises(InferenceLogFull, match=r"8 rows wait .* none of the 3 new rows was accepted") as info:
        inference_log.log_predictions(rows(3, start=7))
    assert isinstance(info.value, MlopsError) and info.value.code == "INFERENCE_LOG_FULL"
    assert inference_log.stats()["buffered_rows"] == 8 and inference_log.stats()["rejected_rows"] == 3
    inference_log.log_predictions(rows(2, start=100))  # what fits is still accepted
    with pytest.raises(InferenceLogFull):
        inference_log.log_feedback("r1", 0)

    inference_log.flush()
    assert inference_log.stats()["buffered_rows"] == 0
    ids = read_inference_log(str(tmp_path), "fraud")["request_id"].tolist()
    assert ids == [f"r{i}" for i in range(7)] + ["r100", "r101"]
    inference_log.log_predictions(rows(3, start=7))  # room again after the flush
    with pytest.raises(InferenceLogError, match="can never fit"):
        inference_log.log_predictions(rows(11))


@pytest.mark.unit
def test_malformed_rows_and_closed_log_are_refused(
    tmp_path: Path, make_log: Callable[..., InferenceLog]
) -> None:
    inference_log = make_log(str(tmp_path))
    broken = rows(3)
    del broken[2]["route"]
    with pytest.raises(InferenceLogError, match="row 2 is malformed.*No row of this call was accepted"):
        inference_log.log_predictions(broken)
    with pytest.raises(InferenceLogError, match="'time' as a datetime"):
        inference_log.log_predictions([{**rows(1)[0], "time": "2026-03-04"}])
    assert inference_log.stats()["buffered_rows"] == 0
    with pytest.raises(InferenceLogError, match="must match"):
        InferenceLog("Bad Name", str(tmp_path))
    inference_log.close()
    with pytest.raises(InferenceLogClosed):
        inference_log.log_predictions(rows(1))


@pytest.mark.unit
def test_memory_stays_bounded_under_load_and_every_accepted_row_is_written_once(
    tmp_path: Path, make_log: Callable[..., InferenceLog]
) -> None:
    threads, per_thread, batch, limit = 8, 20_000, 50, 2_000
    inference_log = make_log(str(tmp_path), flush_rows=500, flush_seconds=0.05, max_buffered_rows=limit)
    inference_log.start()
    accepted: list[list[str]] = [[] for _ in range(threads)]
    rejected = [0] * threads
    peak = [0]
    done = threading.Event()

    def produce(worker: int) -> None:
        for start in range(0, per_thread, batch):
            offered = rows(batch, start=worker * per_thread + start)
            try:
                inference_log.log_predictions(offered)
            except InferenceLogFull:
                rejected[worker] += batch
                time.sleep(0.001)  # a client backing off after a 503
            else:
                accepted[worker] += [row["request_id"] for row in offered]

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], inference_log.stats()["buffered_rows"])
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    sampler.join()
    inference_log.close()

    accepted_ids = [request_id for ids in accepted for request_id in ids]
    assert len(accepted_ids) + sum(rejected) == threads * per_thread
    assert sum(rejected) > 0, "the load never filled the buffer: backpressure was not exercised"
    assert peak[0] <= limit
    written = read_inference_log(str(tmp_path), "fraud")["request_id"]
    assert written.is_unique and set(written) == set(accepted_ids)
    stats = inference_log.stats()
    assert stats["written_rows"] == len(accepted_ids) and stats["rejected_rows"] == sum(rejected)


# Failures and recovery ---------------------------------------------------------------------------------------
@pytest.mark.unit
def test_failing_local_target_keeps_rows_and_writes_them_once_it_works(
    blocked: tuple[Path, str], make_log: Callable[..., InferenceLog], caplog: pytest.LogCaptureFixture
) -> None:
    blocker, uri = blocked
    inference_log = make_log(uri, flush_rows=10, flush_seconds=0.05, retry_seconds=0.05)
    inference_log.log_predictions(rows(50))
    inference_log.log_feedback("r1", 1)
    inference_log.flush()  # synchronous, raises nothing
    stats = inference_log.stats()
    assert stats["buffered_rows"] == 51 and stats["failed_flushes"] == 1 and stats["written_rows"] == 0
    assert str(blocker) in stats["last_error"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert (
        errors
        and str(blocker) in errors[0].getMessage()
        and "51 rows stay buffered" in errors[0].getMessage()
    )

    inference_log.start()
    inference_log.log_predictions(rows(5, start=50))
    wait_for(lambda: inference_log.stats()["failed_flushes"] >= 3)
    assert inference_log.stats()["buffered_rows"] == 56
    blocker.unlink()
    wait_for(lambda: inference_log.stats()["buffered_rows"] == 0)

    written = read_inference_log(uri, "fraud")["request_id"]
    assert written.is_unique and len(written) == 55
    assert read_feedback(uri, "fraud")["request_id"].tolist() == ["r1"]
    assert any("again after" in r.getMessage() for r in caplog.records)


@pytest.mark.service
def test_s3_target_survives_an_outage(
    s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, make_log: Callable[..., InferenceLog]
) -> None:
    import boto3

    uri = f"s3://{s3_bucket}/fraud/inference"
    inference_log = make_log(uri, flush_rows=20, flush_seconds=0.05, retry_seconds=0.05)
    inference_log.start()
    inference_log.log_predictions(rows(20))
    wait_for(lambda: inference_log.stats()["written_rows"] == 20)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert len(keys) == 1 and keys[0].startswith(
        "fraud/inference/predictions/pipeline=fraud/date=2026-03-04/part-"
    )

    with socket.socket() as nothing_listens:  # bound, never listening: connections are refused
        nothing_listens.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{nothing_listens.getsockname()[1]}")
        inference_log.log_predictions(rows(30, start=20))
        inference_log.log_feedback("r21", 1)
        wait_for(lambda: inference_log.stats()["failed_flushes"] >= 2)
        assert inference_log.stats()["buffered_rows"] == 31
        assert "Could not connect" in inference_log.stats()["last_error"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    wait_for(lambda: inference_log.stats()["buffered_rows"] == 0)

    written = read_inference_log(uri, "fraud")["request_id"]
    assert written.is_unique and len(written) == 50
    assert read_feedback(uri, "fraud")["label"].tolist() == [1]


# close() -----------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_close_writes_everything(tmp_path: Path) -> None:
    started = InferenceLog("fraud", str(tmp_path / "a"), flush_rows=10_000, flush_seconds=60)
    started.start()
    started.log_predictions(rows(123))
    started.log_feedback("r5", 1)
    never_started = InferenceLog("fraud", str(tmp_path / "b"))
    never_started.log_predictions(rows(7))
    for inference_log in (started, never_started):
        inference_log.close()
        inference_log.close()  # idempotent
        assert inference_log.stats()["buffered_rows"] == 0 and inference_log.fallback_dir is None
    assert len(read_inference_log(str(tmp_path / "a"), "fraud")) == 123
    assert len(read_feedback(str(tmp_path / "a"), "fraud")) == 1
    assert len(read_inference_log(str(tmp_path / "b"), "fraud")) == 7


@pytest.mark.unit
def test_close_on_a_dead_target_saves_the_rows_to_the_fallback(
    blocked: tuple[Path, str], fallback_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, uri = blocked
    inference_log = InferenceLog("fraud", uri, flush_seconds=0.05, retry_seconds=0.05)
    inference_log.start()
    inference_log.log_predictions(rows(40))
    inference_log.log_feedback("r3", 1)
    began = time.monotonic()
    inference_log.close(timeout=0.5)
    assert time.monotonic() - began < 3

    stats = inference_log.stats()
    assert stats["buffered_rows"] == 0 and stats["dumped_rows"] == 41 and stats["written_rows"] == 0
    fallback = Path(stats["fallback_dir"])
    assert fallback.parent == fallback_tmp / "mlops-inference-fallback" and fallback.name.startswith("fraud-")
    message = caplog.records[-1].getMessage()
    assert caplog.records[-1].levelno == logging.ERROR
    assert "41 rows could not be written" in message and str(fallback) in message and uri in message
    assert read_inference_log(str(fallback), "fraud")["request_id"].tolist() == [f"r{i}" for i in range(40)]
    assert read_feedback(str(fallback), "fraud")["request_id"].tolist() == ["r3"]


@pytest.mark.service
def test_close_does_not_hang_on_a_stalled_s3_target(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, fallback_tmp: Path
) -> None:
    inference_log = InferenceLog("fraud", f"s3://{s3_bucket}/inference", flush_seconds=0.05)
    with socket.socket() as stalled:  # takes connections (its backlog) and never answers: the PUT hangs
        stalled.bind(("127.0.0.1", 0))
        stalled.listen()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{stalled.getsockname()[1]}")
        inference_log.start()
        inference_log.log_predictions(rows(10))
        time.sleep(0.3)  # the flusher is now waiting for an answer that never comes
        assert inference_log.stats()["failed_flushes"] == 0 and inference_log.stats()["buffered_rows"] == 10
        began = time.monotonic()
        inference_log.close(timeout=0.5)
        assert time.monotonic() - began < 2
        stats = inference_log.stats()
        assert stats["dumped_rows"] == 10 and stats["written_rows"] == 0
        assert len(read_inference_log(stats["fallback_dir"], "fraud")) == 10
    # Closing the socket fails the stuck write; the thread then ends without writing anything twice.
    wait_for(lambda: not any(t.name == "inference-log-fraud" for t in threading.enumerate()), timeout=20)
    assert inference_log.stats()["written_rows"] == 0
