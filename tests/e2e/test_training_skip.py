"""No version without news, through the real training DAG (``dag.test()``): a run on the same inputs as a
registered version skips training, registration, the gate and deployment, names that version and succeeds;
``force`` trains anyway; other data trains; a drift request on unchanged data skips too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagtools import champion, model_versions, task_states

pytestmark = pytest.mark.e2e
DAG_ID = "breast_cancer_training"
PIPELINE = "breast_cancer"
AFTER_TRAIN = ("register", "gate", "deploy", "gate_rejected")


def _run(dagbag: Any, data_uri: Path, **conf: Any) -> tuple[Any, dict[str, str], dict[str, Any] | None]:
    """One run; (the run, task states, what ``train`` said when it skipped)."""
    # dag.test() leaves a run's conf in the DAG object's params: spell out every param on each run.
    run_conf = {
        "data_uri": str(data_uri),
        "model": None,
        "reason": "",
        "training_window": "config",
        "force": False,
        **conf,
    }
    dag_run = dagbag.get_dag(DAG_ID).test(run_conf=run_conf)
    same = None
    for ti in dag_run.get_task_instances():
        if ti.task_id == "train":
            same = ti.xcom_pull(task_ids="train", key="same_inputs")
    return dag_run, task_states(dag_run), same


def test_same_inputs_skip_force_trains_and_new_data_trains(
    dagbag: Any, bc_batches: dict[str, Path], mlops_home: Path
) -> None:
    from mlops import registry
    from mlops.ml.training import FINGERPRINT_TAG

    dag_run, states, _ = _run(dagbag, bc_batches["first"], reason="first batch")
    assert dag_run.state == "success", states
    assert champion(PIPELINE) == 1
    v1 = registry.get_version(PIPELINE, 1)
    fingerprint = registry.client().get_run(v1.run_id).data.tags[FINGERPRINT_TAG]
    assert len(fingerprint) == 64

    # The same batch again: the batch is still ingested and validated, then nothing is trained or registered.
    dag_run, states, same = _run(dagbag, bc_batches["first"], reason="same batch again")
    assert dag_run.state == "success", states
    assert states["ingest"] == states["validate"] == "success"
    assert states["train"] == "skipped" and all(states[t] == "skipped" for t in AFTER_TRAIN), states
    assert same is not None and same["version"] == 1 and same["run_id"] == v1.run_id
    assert same["message"] == (
        f"same data, config and code as breast_cancer v1 (run {v1.run_id}, the champion): nothing new to "
        "train; trigger with force=true to train anyway"
    )
    assert len(model_versions(PIPELINE)) == 1
    assert registry.get_version(PIPELINE, 1).tags[FINGERPRINT_TAG] == fingerprint  # one search finds it
    experiment = registry.client().get_experiment_by_name(PIPELINE)
    assert len(registry.client().search_runs([experiment.experiment_id])) == 1, "no MLflow run started"

    # force: trains and registers v2 on the same inputs, and says which version it repeats.
    dag_run, states, _ = _run(dagbag, bc_batches["first"], reason="forced", force=True)
    assert dag_run.state == "success", states
    assert states["train"] == states["register"] == states["gate"] == "success", states
    v2_run = registry.client().get_run(registry.get_version(PIPELINE, 2).run_id)
    assert v2_run.data.tags[FINGERPRINT_TAG] == fingerprint
    assert v2_run.data.tags["mlops.same_inputs_as"] == "1"

    # Other data (the second batch; window 'all': both batches) trains v3.
    dag_run, states, same = _run(dagbag, bc_batches["second"], reason="new batch")
    assert dag_run.state == "success", states
    assert states["train"] == states["register"] == "success" and same is None, states
    v3_run = registry.client().get_run(registry.get_version(PIPELINE, 3).run_id)
    assert v3_run.data.tags[FINGERPRINT_TAG] != fingerprint

    # Monitoring asks to retrain on data that is already in v3: skipped, and the message says it was drift.
    # (The scheduler hands the request over in the Asset event's extra; dag.test() passes it as the conf,
    # which run_params reads the same way. Last: dag.test() keeps a conf key in the DAG's params.)
    dag_run, states, same = _run(
        dagbag, bc_batches["second"], reason="drift in 3 windows", trigger="drift", training_window="all"
    )
    assert dag_run.state == "success", states
    assert states["validate"] == "success" and states["train"] == "skipped", states
    assert same is not None and same["version"] == 3
    assert same["message"].startswith(
        "retraining requested by monitoring (drift), but the data, config and code"
    )
    assert len(model_versions(PIPELINE)) == 3

    # The same by hand (the configured window is 'all'): skipped with the plain message. This also leaves the
    # session's DAG with trigger 'manual' for the tests after this one.
    dag_run, states, same = _run(dagbag, bc_batches["second"], trigger="manual")
    assert dag_run.state == "success" and states["train"] == "skipped", states
    assert same is not None and same["message"].startswith("same data, config and code as breast_cancer v3")
