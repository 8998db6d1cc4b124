"""The training DAG end to end through Airflow (``dag.test()``), on a real MLflow store and data store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagtools import champion, model_versions, task_states

pytestmark = pytest.mark.e2e
DAG_ID = "breast_cancer_training"
PIPELINE = "breast_cancer"


def _run(dagbag: Any, conf: dict[str, Any], dag_id: str = DAG_ID) -> tuple[Any, dict[str, str]]:
    # dag.test() leaves a run's conf in the DAG object's params: spell out every param on each run.
    dag_run = dagbag.get_dag(dag_id).test(run_conf={"model": None, "reason": "", **conf})
    return dag_run, task_states(dag_run)


def test_story_first_batch_new_batch_and_a_worse_model(
    dagbag: Any, bc_batches: dict[str, Path], mlops_home: Path
) -> None:
    import mlflow

    from mlops import registry

    # A first batch becomes champion v1, facing the absolute thresholds only.
    dag_run, states = _run(dagbag, {"data_uri": str(bc_batches["first"]), "reason": "first batch"})
    assert dag_run.state == "success", states
    assert states["deploy"] == "success" and states["gate_rejected"] == "skipped"
    assert champion(PIPELINE) == 1
    v1 = registry.get_version(PIPELINE, 1)
    assert v1.tags["gate.verdict"] == "passed"
    assert v1.tags["gate.champion_version"] == "none"
    assert v1.tags["deploy.status"] == "champion"
    run = registry.client().get_run(v1.run_id)
    for tag in (
        "mlops.data_hash",
        "mlops.batch_hash",
        "mlops.config_hash",
        "mlops.code_version",
        "mlops.seed",
    ):
        assert run.data.tags[tag], tag
    assert run.data.tags["airflow.dag_id"] == DAG_ID
    assert run.data.tags["airflow.run_id"] == dag_run.run_id
    assert run.data.tags["mlops.trigger_reason"] == "first batch"
    assert run.data.params["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert run.data.metrics["roc_auc"] > 0.9
    artifacts = {a.path for a in registry.client().list_artifacts(v1.run_id, "data")}
    assert artifacts == {"data/snapshot.json", "data/holdout.parquet"}
    report = Path(registry.client().download_artifacts(v1.run_id, "gate/verdict.md")).read_text()
    assert report.startswith("# Gate verdict: PASSED") and "| roc_auc |" in report
    model_info = mlflow.models.get_model_info(f"models:/{PIPELINE}@champion")
    assert model_info.signature is not None and model_info.saved_input_example_info is not None
    promoted = [e for e in registry.audit_trail(PIPELINE, 1) if e["event"] == "promoted"]
    assert promoted and promoted[0]["reason"] == "first batch" and promoted[0]["from_version"] is None

    # A new batch: the challenger learns from both batches and beats or matches v1 on the same holdout.
    dag_run, states = _run(dagbag, {"data_uri": str(bc_batches["second"]), "reason": "new batch"})
    assert dag_run.state == "success", states
    assert champion(PIPELINE) == 2
    v2 = registry.get_version(PIPELINE, 2)
    assert v2.tags["gate.verdict"] == "passed" and v2.tags["gate.champion_version"] == "1"
    assert "gate.champion.roc_auc" in v2.tags
    assert registry.client().get_run(v2.run_id).data.tags["mlops.n_batches"] == "2"
    assert registry.get_version(PIPELINE, 1).tags["deploy.status"] == "retired"

    # A deliberately worse model is registered, rejected, and changes nothing in production.
    worse = {"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
    dag_run, states = _run(dagbag, {"data_uri": str(bc_batches["second"]), "model": worse, "reason": "worse"})
    assert dag_run.state == "success", states  # a rejection is a normal outcome, not a crash
    assert states["gate_rejected"] == "success" and states["deploy"] == "skipped"
    assert champion(PIPELINE) == 2
    v3 = registry.get_version(PIPELINE, 3)
    assert v3.tags["gate.verdict"] == "rejected"
    assert "below the minimum" in v3.tags["gate.reasons"]
    assert registry.alias_version(PIPELINE, registry.CHALLENGER) == 3
    verdict = json.loads(
        Path(registry.client().download_artifacts(v3.run_id, "gate/verdict.json")).read_text()
    )
    assert verdict["status"] == "rejected" and verdict["champion_metrics"]["roc_auc"] > 0.9


@pytest.fixture(scope="module")
def home_with_champion(
    dagbag: Any, bc_batches: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One MLOPS_HOME for the corruption tests, holding champion v1 trained on the first batch."""
    home = tmp_path_factory.mktemp("mlops-corruption")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        dag_run, states = _run(dagbag, {"data_uri": str(bc_batches["first"])})
        assert dag_run.state == "success", states
        yield home


EXPECTED_REASON = {
    "nulls": "null",
    "missing_column": "missing",
    "wrong_type": "type",
    "out_of_range": "outside",
    "empty": "empty",
    "unparseable": "parse",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_REASON))
def test_corrupted_batch_is_quarantined_and_the_champion_untouched(
    dagbag: Any, bc_batches: dict[str, Path], home_with_champion: Path, kind: str
) -> None:
    source = bc_batches[kind]
    before = source.read_bytes()
    versions_before = len(model_versions(PIPELINE))

    dag_run, states = _run(dagbag, {"data_uri": str(source)})

    assert dag_run.state == "failed"
    assert states["ingest"] == "success" and states["validate"] == "failed"
    assert all(states[t] in ("upstream_failed", "skipped") for t in ("train", "register", "gate", "deploy"))
    assert len(model_versions(PIPELINE)) == versions_before, "no new model version"
    assert champion(PIPELINE) == 1
    assert source.read_bytes() == before, "the source batch is left as it was"
    quarantined = [
        p for p in (home_with_champion / "store" / PIPELINE / "quarantine").iterdir() if p.is_dir()
    ]
    folder = next(
        p for p in quarantined if json.loads((p / "batch.json").read_text())["source"].endswith(source.name)
    )
    names = {p.name for p in folder.iterdir()}
    assert {"result.json", "report.html", "batch.json"} <= names and len(names) == 4, names
    summary = json.loads((folder / "batch.json").read_text())["summary"]
    assert EXPECTED_REASON[kind] in summary.lower(), summary
    assert not list((home_with_champion / "store" / PIPELINE / "incoming").glob("*")), "nothing left half-way"
