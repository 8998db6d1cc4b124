"""The monitoring DAG's shape, and how a retraining request reaches the training DAG."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_each_pipeline_has_a_monitoring_dag_and_training_listens_for_retraining(dagbag: Any) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    for name in ("breast_cancer", "fraud_detection", "demand_forecast"):
        dag = dagbag.dags[f"{name}_monitoring"]
        assert dag.get_task("analyze").downstream_task_ids == {"act"}
        assert dag.get_task("act").downstream_task_ids == {"request_retraining", "done"}
        outlets = dag.get_task("request_retraining").outlets
        assert [asset.name for asset in outlets] == [f"{name}_retrain"]
        assert set(dag.params) == {"start", "end"}
        training = dagbag.dags[f"{name}_training"]
        # The form: no internal param (a retraining request's trigger comes in its Asset event), no null.
        assert set(training.params) == {"data_uri", "reason", "training_window", "force", "model"}
        assert training.params["training_window"] == "config" and training.params["model"] == {}
    # A cron schedule and the Asset: either starts a training run.
    fraud = dagbag.dags["fraud_detection_training"]
    assert isinstance(fraud.timetable, AssetOrTimeSchedule)
    # Monitoring runs have data intervals (Airflow 3 gives a cron string empty ones): each window is the hour
    # before its run.
    monitoring = dagbag.dags["fraud_detection_monitoring"]
    assert repr(monitoring.timetable) == "CronDataIntervalTimetable(expression='0 * * * *', timezone='UTC')"


def test_a_retraining_request_overrides_the_params_of_an_asset_triggered_run() -> None:
    from mlops.airflow.operators import run_params

    older = SimpleNamespace(timestamp=datetime(2026, 11, 1, tzinfo=UTC), extra={"data_uri": "s3://old"})
    newer = SimpleNamespace(
        timestamp=datetime(2026, 11, 2, tzinfo=UTC),
        extra={"data_uri": "s3://new", "reason": "drift: ...", "trigger": "drift", "unrelated": "x"},
    )
    context = {
        "params": {"data_uri": "landing/{ds}.csv", "reason": "", "model": None},
        "triggering_asset_events": {"asset": [older, newer]},
    }
    params = run_params(context)  # type: ignore[arg-type]
    assert (
        params["data_uri"] == "s3://new" and params["reason"] == "drift: ..." and params["trigger"] == "drift"
    )
    assert "unrelated" not in params and params["model"] is None
    # A run triggered by hand (no events) keeps its own params.
    assert run_params({"params": {"data_uri": "x"}}) == {"data_uri": "x"}  # type: ignore[arg-type]
