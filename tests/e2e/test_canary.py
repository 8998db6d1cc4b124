"""Canary deployment through Airflow against a real model server on 127.0.0.1 under live traffic: a good
challenger is promoted from the guard statistics, a slow one is rolled back, and no request fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dagtools import champion, parse_dags, task_states
from receivers import free_port

from mlops.serving.client import wait_until_ready

pytestmark = pytest.mark.e2e
PIPELINE = "breast_cancer"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def canary_pipeline(mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """breast_cancer with a canary strategy and its server on a free port (written as YAML, as a user would)."""
    config = yaml.safe_load((REPO / "include" / "pipelines" / f"{PIPELINE}.yaml").read_text())
    port = free_port()
    config["deploy"] = {
        "strategy": "canary",
        "canary": {
            "traffic_share": 0.5,
            "min_requests": 20,
            "max_duration_seconds": 90,
            "max_p99_latency_ms": 300,
            "max_error_rate": 0.0,
        },
    }
    config["serving"] = {"port": port, "poll_interval_seconds": 1}
    config["alerts"] = []
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    return {"url": f"http://127.0.0.1:{port}", "port": port}


@pytest.fixture
def server(canary_pipeline: dict[str, Any], mlops_home: Path) -> Iterator[str]:
    """`mlops serve` in its own process; started after the first champion exists (see the test)."""
    processes: list[subprocess.Popen] = []

    def start() -> str:
        mlops = Path(sys.executable).parent / "mlops"
        log = open(mlops_home / "server.log", "ab")  # noqa: SIM115 (closed with the process)
        processes.append(
            subprocess.Popen(
                [str(mlops), "serve", PIPELINE, "--port", str(canary_pipeline["port"])],
                stdout=log,
                stderr=log,
                env=os.environ.copy(),
            )
        )
        url = canary_pipeline["url"]
        assert wait_until_ready(url), f"server not ready: {(mlops_home / 'server.log').read_text()[-3000:]}"
        return url

    yield start  # type: ignore[misc]
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_canary_promotes_a_good_challenger_and_rolls_back_a_slow_one(
    airflow_db: Path, bc_batches: dict[str, Path], server: Any, mlops_home: Path
) -> None:
    import pandas as pd

    from mlops import registry
    from mlops.serving.client import LiveTraffic

    dag = parse_dags().get_dag(f"{PIPELINE}_training")
    run = {"model": None, "reason": ""}
    assert dag.test(run_conf={**run, "data_uri": str(bc_batches["first"])}).state == "success"
    assert champion(PIPELINE) == 1  # the first model has nothing to be a canary against

    url = server()
    features = [c for c in pd.read_csv(bc_batches["second"]).columns if c != "diagnosis"]
    records = pd.read_csv(bc_batches["second"])[features].head(100).to_dict("records")
    with LiveTraffic(url, records) as traffic:
        dag_run = dag.test(run_conf={**run, "data_uri": str(bc_batches["second"]), "reason": "canary good"})
        assert dag_run.state == "success", task_states(dag_run)
        assert champion(PIPELINE) == 2
        events = [e["event"] for e in registry.audit_trail(PIPELINE, 2)]
        assert "canary_started" in events and "canary_promote" in events and events[-1] == "promoted"

        slow = {"estimator": "mlops_datagen.faulty.SlowClassifier", "params": {"delay_seconds": 0.4}}
        dag_run = dag.test(run_conf={**run, "data_uri": str(bc_batches["second"]), "model": slow})
        states = task_states(dag_run)
        assert states["gate"] == "success" and states["deploy"] == "failed", states
        assert champion(PIPELINE) == 2
        rolled = [e for e in registry.audit_trail(PIPELINE, 3) if e["event"] == "canary_rollback"]
        assert rolled and "p99 latency" in " ".join(rolled[0]["reasons"])
        assert registry.alias_version(PIPELINE, "canary") is None
        time.sleep(2)

    assert not traffic.failures, traffic.failures[:5]
    assert traffic.versions.get(3, 0) > 0, (
        "the slow canary did answer part of the traffic before its rollback"
    )
    assert httpx.get(f"{url}/model", timeout=5).json()["version"] == 2
