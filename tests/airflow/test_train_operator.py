"""The train operator's "no version without news": ``execute()`` called directly (no scheduler) on a real MLflow
store. Same inputs as a registered version: skipped, naming it (and a drift request says so in an alert);
``force`` trains anyway."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from task_runtime import context

from mlops.config import PipelineConfig, load_config

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _context(task: Any, **params: Any) -> dict[str, Any]:
    return context(task, **{"reason": "", **params})


@pytest.fixture(scope="module")
def trained(module_home: Path, bc_files: list[Path]) -> dict[str, Any]:
    """The real training DAG's train and register tasks, v1 registered from the first batch."""
    from mlops.airflow.dag_factory import build_training_dag
    from mlops.data.batches import ingest_batch, validate_and_file

    data = load_config(REPO / "include" / "pipelines" / "breast_cancer.yaml").model_dump(mode="json")
    data["alerts"] = []  # alerts go to the task log
    config = PipelineConfig.model_validate(data)
    dag = build_training_dag(config)
    batch = validate_and_file(config, ingest_batch(config, str(bc_files[0]))).batch.to_dict()
    train, register = dag.get_task("train"), dag.get_task("register")
    train.batch = batch
    first = train.execute(_context(train))
    register.trained = first
    assert register.execute(_context(register))["version"] == 1
    return {"train": train, "first": first}


def test_a_trained_model_hands_its_fingerprint_on(trained: dict[str, Any]) -> None:
    from mlops.ml.training import FINGERPRINT_TAG

    assert len(trained["first"][FINGERPRINT_TAG]) == 64


def test_same_inputs_skip_the_task_naming_the_version(trained: dict[str, Any]) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    train = trained["train"]
    context = _context(train)
    with pytest.raises(AirflowSkipException, match=r"same data, config and code as breast_cancer v1 \(run "):
        train.execute(context)

    same = context["ti"].xcom[train.SAME_INPUTS_KEY]
    assert same["version"] == 1 and same["run_id"] == trained["first"]["run_id"]
    assert "force=true" in same["message"]
    assert "mlflow_run_id" not in context["ti"].xcom  # no MLflow run was started


def test_a_drift_request_that_trains_nothing_says_so(
    trained: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    train = trained["train"]
    caplog.set_level(logging.INFO)
    with pytest.raises(AirflowSkipException, match=r"requested by monitoring \(drift\)"):
        train.execute(_context(train, trigger="drift", reason="drift in 3 windows"))

    assert "retraining skipped: same inputs as v1" in caplog.text  # the drift alert, to the task log


@pytest.mark.parametrize("force", [True, "true"])
def test_force_trains_anyway(trained: dict[str, Any], force: Any) -> None:
    from mlops import registry

    train = trained["train"]
    context = _context(train, force=force)
    result = train.execute(context)

    assert result["run_id"] != trained["first"]["run_id"]
    assert context["ti"].xcom["mlflow_run_id"] == result["run_id"]
    assert registry.client().get_run(result["run_id"]).data.tags["mlops.same_inputs_as"] == "1"
