"""``mlops.airflow.batch_wait`` (``data.wait``): the training run waits, deferred, until its batch lands.

The operator's ``execute()`` called directly with a minimal context, its triggers run on an event loop, no
scheduler: a local file with the standard provider's ``FileTrigger``, an ``s3://`` object on moto's server with
:class:`~mlops.airflow.triggers.S3BatchTrigger`. The whole wait under the real scheduler and triggerer is in
tests/integration/test_stack_loop.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from receivers import WebhookServer

from mlops.config import PipelineConfig

WHEN = datetime(2026, 11, 26, 3, tzinfo=UTC)


def _waiting(config: PipelineConfig, source: str, timeout_hours: float = 6) -> PipelineConfig:
    data = {
        **config.data.model_dump(),
        "source": source,
        "wait": {"timeout_hours": timeout_hours, "poke_seconds": 1},
    }
    return PipelineConfig.model_validate({**config.model_dump(), "data": data})


def _operator(config: PipelineConfig) -> Any:
    from mlops.airflow.batch_wait import WaitForBatchOperator

    task = WaitForBatchOperator(task_id="wait_for_batch", config=config)
    task.data_uri = config.data.source  # as Airflow renders "{{ params.data_uri }}" on a scheduled run
    return task


def _context(task: Any) -> dict[str, Any]:
    return {"params": {"data_uri": task.data_uri}, "logical_date": WHEN, "ti": None}


async def _first_event(trigger: Any, timeout: float = 20.0) -> Any:
    async def first() -> Any:
        async for event in trigger.run():
            return event
        return None

    return await asyncio.wait_for(first(), timeout)


@pytest.mark.unit
def test_with_data_wait_the_training_dag_starts_with_the_wait_and_ingests_what_it_found(
    breast_cancer: PipelineConfig,
) -> None:
    from mlops.airflow.dag_factory import build_training_dag

    dag = build_training_dag(_waiting(breast_cancer, "s3://landing/bc/{ds}.csv"))
    wait = dag.get_task("wait_for_batch")
    assert wait.upstream_task_ids == set() and wait.downstream_task_ids == {"ingest"}
    assert dag.get_task("ingest").data_uri.operator is wait  # a data edge: ingest reads the URI it found

    data = {**breast_cancer.data.model_dump(), "wait": None}
    plain = build_training_dag(PipelineConfig.model_validate({**breast_cancer.model_dump(), "data": data}))
    assert "wait_for_batch" not in plain.task_ids  # data.wait: null
    assert plain.get_task("ingest").upstream_task_ids == set()
    assert build_training_dag(breast_cancer).get_task("wait_for_batch")  # the default waits


@pytest.mark.unit
def test_a_batch_that_is_there_passes_at_once_with_the_runs_date(
    breast_cancer: PipelineConfig, tmp_path: Path
) -> None:
    (tmp_path / "2026-11-26.csv").write_text("a,b\n1,2\n")
    task = _operator(_waiting(breast_cancer, f"{tmp_path}/{{ds}}.csv"))

    assert task.execute(_context(task)) == (tmp_path / "2026-11-26.csv").as_uri()


@pytest.mark.unit
def test_a_missing_local_batch_defers_to_the_file_trigger_which_fires_when_it_lands(
    breast_cancer: PipelineConfig, tmp_path: Path
) -> None:
    from airflow.providers.standard.triggers.file import FileTrigger
    from airflow.sdk.exceptions import TaskDeferred

    task = _operator(_waiting(breast_cancer, f"{tmp_path}/[landing]/{{ds}}.csv"))
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(_context(task))

    assert isinstance(deferred.value.trigger, FileTrigger)
    assert deferred.value.timeout == timedelta(hours=6)
    batch = tmp_path / "[landing]" / "2026-11-26.csv"  # a '[' in the path is taken literally, not as a glob

    async def deliver_later() -> Any:
        async def deliver() -> None:
            await asyncio.sleep(1.5)
            batch.parent.mkdir()
            batch.write_text("a,b\n1,2\n")

        delivery = asyncio.create_task(deliver())
        event = await _first_event(deferred.value.trigger)
        await delivery
        return event

    assert asyncio.run(deliver_later()) is not None
    resumed = task.resume_execution(deferred.value.method_name, {"event": True, **deferred.value.kwargs}, {})
    assert resumed == batch.as_uri()


@pytest.mark.service
def test_past_the_timeout_the_run_ends_as_no_data_with_a_warning_not_a_failure(
    breast_cancer: PipelineConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook_server: WebhookServer,
) -> None:
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
    from airflow.sdk.exceptions import AirflowSkipException

    from mlops.config import AlertRoute

    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    config = _waiting(breast_cancer, f"{tmp_path}/{{ds}}.csv", timeout_hours=0.5).model_copy(
        update={"alerts": [AlertRoute(channel="slack", conn_id="slack_mlops")]}  # default events
    )
    task = _operator(config)
    timed_out = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}

    with pytest.raises(AirflowSkipException) as skipped:
        task.resume_execution(TRIGGER_FAIL_REPR, timed_out, _context(task))

    where = (tmp_path / "2026-11-26.csv").as_uri()
    assert str(skipped.value).startswith(f"no data: no batch at {where} after 30 min")
    assert webhook_server.wait_for_requests(1)
    alert = webhook_server.requests[0].text
    assert "nothing trained" in alert and where in alert and "FAILURE" not in alert.upper()


@pytest.mark.unit
def test_a_manual_run_does_not_wait_for_a_missing_batch(
    breast_cancer: PipelineConfig, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    task = _operator(_waiting(breast_cancer, f"{tmp_path}/{{ds}}.csv"))
    context = {**_context(task), "dag_run": SimpleNamespace(run_type="manual")}
    with pytest.raises(AirflowFailException, match="a manual run does not wait for its batch"):
        task.execute(context)


@pytest.mark.service
def test_the_s3_trigger_fires_when_the_object_lands(breast_cancer: PipelineConfig, s3_bucket: str) -> None:
    import boto3
    from airflow.sdk.exceptions import TaskDeferred

    from mlops.airflow.triggers import S3BatchTrigger

    task = _operator(_waiting(breast_cancer, f"s3://{s3_bucket}/landing/{{ds}}.csv"))
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(_context(task))
    trigger = deferred.value.trigger
    assert isinstance(trigger, S3BatchTrigger)
    assert trigger.uri == f"s3://{s3_bucket}/landing/2026-11-26.csv"
    assert trigger.serialize() == (
        "mlops.airflow.triggers.S3BatchTrigger",
        {"uri": trigger.uri, "poke_interval": 1},
    )

    async def deliver_later() -> Any:
        async def deliver() -> None:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(
                boto3.client("s3").put_object, Bucket=s3_bucket, Key="landing/2026-11-26.csv", Body=b"a\n1\n"
            )

        delivery = asyncio.create_task(deliver())
        event = await _first_event(trigger)
        await delivery
        return event

    assert asyncio.run(deliver_later()).payload == {"status": "found", "uri": trigger.uri}
