"""DAG integrity and policy: every DAG imports cleanly, carries the metadata the Airflow UI needs, alerts on
failure, and DAG files load nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ("pandas", "numpy", "sklearn", "mlflow", "great_expectations", "evidently", "boto3", "scipy")


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.mark.unit
def test_every_dag_file_imports_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert {"breast_cancer_training", "fraud_detection_training", "demand_forecast_training"} <= set(
        dagbag.dag_ids
    )


@pytest.mark.unit
def test_every_dag_has_tags_owner_docs_params_and_failure_callbacks(dagbag: Any) -> None:
    from mlops.airflow.alerts import FailureAlert

    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "mlops" in dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 200, dag_id
        assert isinstance(dag.on_failure_callback, FailureAlert) or any(
            isinstance(cb, FailureAlert) for cb in (dag.on_failure_callback or [])
        ), dag_id
        if dag_id.endswith("_training"):
            assert "data_uri" in dag.params, dag_id
        assert dag.max_active_runs >= 1
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), (dag_id, task.task_id)
            assert task.retries >= 1, (dag_id, task.task_id)
            assert task.retry_delay.total_seconds() > 0, (dag_id, task.task_id)
            callbacks = (
                task.on_failure_callback
                if isinstance(task.on_failure_callback, list)
                else [task.on_failure_callback]
            )
            assert any(isinstance(cb, FailureAlert) for cb in callbacks), (dag_id, task.task_id)


@pytest.mark.unit
def test_training_dag_shape(dagbag: Any) -> None:
    dag = dagbag.dags["fraud_detection_training"]
    assert dag.get_task("ingest").downstream_task_ids == {"validate"}
    assert dag.get_task("validate").downstream_task_ids == {"train"}
    assert dag.get_task("register").downstream_task_ids == {"gate"}
    assert dag.get_task("gate").downstream_task_ids == {"deploy", "gate_rejected"}
    # The YAML's cron schedule or a retraining request (Asset event), whichever comes first.
    assert repr(dag.timetable.timetable) == (
        "CronTriggerTimetable(expression='0 2 * * *', timezone='UTC', interval=datetime.timedelta(0), "
        "run_immediately=False)"
    )
    assert [asset.name for asset in dag.timetable.asset_condition.objects] == ["fraud_detection_retrain"]


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
@pytest.mark.unit
def test_dag_files_import_nothing_heavy(dag_file: Path) -> None:
    """Airflow parses DAG files constantly: importing one must load none of the ML libraries."""
    code = textwrap.dedent(
        f"""
        import json, runpy, sys
        runpy.run_path({str(dag_file)!r})
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.unit
def test_a_broken_config_breaks_only_its_own_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    good = (REPO / "include" / "pipelines" / "breast_cancer.yaml").read_text()
    (pipelines / "breast_cancer.yaml").write_text(good)
    broken = good.replace("name: breast_cancer", "name: broken_one").replace(
        "task: classification", "task: clustering"
    )
    (pipelines / "broken_one.yaml").write_text(broken)
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))

    bag = DagBag(dag_folder=str(REPO / "dags"))

    assert "breast_cancer_training" in bag.dag_ids
    assert "broken_one_training" not in bag.dag_ids
    ((error_file, message),) = bag.import_errors.items()
    assert error_file.endswith("mlops_config_errors.py")
    assert (
        "broken_one.yaml" in message
        and "field 'task'" in message
        and "'classification' or 'regression'" in message
    )


@pytest.mark.e2e
def test_airflow_cli_reports_no_import_errors(airflow_db: Path) -> None:
    """`airflow dags reserialize` then `airflow dags list-import-errors`, as a user would type them."""
    airflow = str(Path(sys.executable).parent / "airflow")
    env = os.environ.copy()
    subprocess.run([airflow, "dags", "reserialize"], check=True, capture_output=True, env=env)
    listed = subprocess.run(
        [airflow, "dags", "list-import-errors", "--output", "json"], capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert json.loads(listed.stdout.strip().splitlines()[-1] or "[]") == []
