"""Deployment guards and rollback through Airflow: a broken challenger that passes the gate is caught by the
smoke test (in its own process) and never promoted; the rollback DAG restores the previous champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagtools import champion, task_states

pytestmark = pytest.mark.e2e
PIPELINE = "breast_cancer"


def _run(dagbag: Any, dag_id: str, conf: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    dag_run = dagbag.get_dag(dag_id).test(run_conf=conf)
    return dag_run, task_states(dag_run)


def _train(dagbag: Any, conf: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    return _run(dagbag, f"{PIPELINE}_training", {"model": None, "reason": "", **conf})


def test_a_slow_challenger_fails_its_smoke_test_and_the_champion_serves_on(
    dagbag: Any, bc_batches: dict[str, Path], mlops_home: Path
) -> None:
    from mlops import registry

    assert _train(dagbag, {"data_uri": str(bc_batches["first"])})[0].state == "success"
    slow = {"estimator": "mlops_datagen.faulty.SlowClassifier", "params": {"delay_seconds": 1.5}}

    dag_run, states = _train(dagbag, {"data_uri": str(bc_batches["second"]), "model": slow, "reason": "slow"})

    assert states["gate"] == "success" and states["deploy"] == "failed", states  # good metrics, too slow
    assert dag_run.state == "failed"
    assert champion(PIPELINE) == 1
    version = registry.get_version(PIPELINE, 2)
    assert version.tags["gate.verdict"] == "passed"
    assert version.tags["smoke.passed"] == "false"
    assert "over the budget" in version.tags["smoke.reasons"]
    assert version.tags["deploy.status"] == "rejected"
    assert [e["event"] for e in registry.audit_trail(PIPELINE, 2)][-1] == "smoke_test"


def test_a_challenger_returning_garbage_is_caught_by_the_smoke_test(
    dagbag: Any, mlops_home: Path, tmp_path: Path
) -> None:
    from mlops import registry
    from mlops_datagen import generate_batches

    first, second = generate_batches("demand_forecast", tmp_path, batches=2, rows=800, seed=3)
    run = {"model": None, "reason": ""}
    assert (
        dagbag.get_dag("demand_forecast_training").test(run_conf={**run, "data_uri": str(first)}).state
        == "success"
    )
    garbage = {"estimator": "mlops_datagen.faulty.GarbageRegressor", "params": {}}

    dag_run = dagbag.get_dag("demand_forecast_training").test(
        run_conf={**run, "data_uri": str(second), "model": garbage}
    )

    states = task_states(dag_run)
    assert states["deploy"] == "failed", states
    assert registry.alias_version("demand_forecast", registry.CHAMPION) == 1
    assert "not one finite value" in registry.get_version("demand_forecast", 2).tags["smoke.reasons"]


def test_the_rollback_dag_restores_the_previous_champion_and_the_history_shows_it(
    dagbag: Any, bc_batches: dict[str, Path], mlops_home: Path
) -> None:
    from mlops.services.deploy import history

    assert _train(dagbag, {"data_uri": str(bc_batches["first"])})[0].state == "success"
    assert _train(dagbag, {"data_uri": str(bc_batches["second"])})[0].state == "success"
    assert champion(PIPELINE) == 2

    dag_run, states = _run(dagbag, f"{PIPELINE}_rollback", {"to_version": None, "reason": "v2 misbehaves"})

    assert dag_run.state == "success", states
    assert champion(PIPELINE) == 1
    events = [(e["version"], e["event"]) for e in history(PIPELINE)]
    assert events[-2:] == [(1, "rolled_back_to"), (2, "rolled_back")]
    restored = [e for e in history(PIPELINE) if e["event"] == "rolled_back_to"][-1]
    assert restored["from_version"] == 2 and restored["reason"] == "v2 misbehaves"

    # Rolling back again with no earlier champion to return to is refused with a clear reason.
    dag_run, states = _run(dagbag, f"{PIPELINE}_rollback", {"to_version": 1, "reason": "again"})
    assert states["rollback"] == "failed" and dag_run.state == "failed"
    assert champion(PIPELINE) == 1
