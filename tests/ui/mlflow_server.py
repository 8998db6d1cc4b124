"""Helpers of the MLflow UI tests: three real versions of breast_cancer and ``mlflow server`` on 127.0.0.1.

The versions are made as the training DAG makes them (train, register, gate, promote), without Airflow:
v1 and v2 pass the gate and are promoted in turn; v3 (a deliberately worse model) is rejected and stays the
pending candidate.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ui_server import stop_group

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"


@dataclass
class MlflowServer:
    url: str
    home: Path
    experiment_id: str
    run_ids: dict[int, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_versions(home: Path) -> tuple[str, dict[int, str]]:
    """v1 and v2 promoted, v3 rejected by the gate; returns the experiment id and each version's run."""
    from mlops import registry
    from mlops.config import load_config
    from mlops.data.batches import ingest_batch
    from mlops.ml import training
    from mlops.services.gate import gate_challenger
    from mlops_datagen import generate_batches

    config = load_config(REPO / "include" / "pipelines" / f"{PIPELINE}.yaml")
    files = generate_batches(PIPELINE, home / "landing", batches=3, rows=300, seed=7)
    worse = {"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
    runs: dict[int, str] = {}
    experiment_id = ""
    for number, (path, override) in enumerate(zip(files, (None, None, worse), strict=True), start=1):
        lineage = {"mlops.trigger_reason": "a worse model" if override else f"batch {number}"}
        result = training.train_model(
            config, ingest_batch(config, str(path)), lineage=lineage, model_override=override
        )
        experiment_id = result.experiment_id
        version = registry.register_version(
            PIPELINE, result.model_uri, result.run_id, {"mlops.run_id": result.run_id}
        )
        runs[version] = result.run_id
        verdict = gate_challenger(config, version)
        if verdict.status == "passed":
            champion = registry.alias_version(PIPELINE, registry.CHAMPION)
            registry.promote(PIPELINE, version, champion, audit={"reason": "gate passed"})
    return experiment_id, runs


def start_mlflow_server(root: Path) -> Iterator[MlflowServer]:
    """Train the versions into a fresh store under ``root``, then serve it with ``mlflow server``."""
    home = root / "mlops"
    home.mkdir()
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        patch.delenv("MLOPS_STORE_URI", raising=False)
        patch.delenv("MLOPS_ARTIFACT_ROOT", raising=False)
        experiment_id, runs = train_versions(home)
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    log_path = root / "mlflow-server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [str(mlflow), "server", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1"]
            + ["--port", str(port), "--workers", "1"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy in 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield MlflowServer(url, home, experiment_id, runs)
    finally:
        stop_group(process)
