"""Helpers of the Models page tests: a running Airflow API server with our plugin, SimpleAuthManager, a user, and real models behind it.

The data is made the way production makes it: the breast_cancer training DAG runs twice through ``dag.test()``
(a first batch becomes champion v1; a deliberately worse model becomes challenger v2 and is rejected by the
gate), then one drifted window of served predictions is monitored (a real Evidently report in MLflow).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"
USER, ROLE = "ml-viewer", "viewer"
WINDOW_START = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW_ROWS = 300


@dataclass
class ModelsServer:
    """An API server on 127.0.0.1 and what the tests need to talk to it."""

    url: str
    username: str
    password: str
    jwt_secret: str
    mlops_home: Path
    log_path: Path

    def token(self) -> str:
        response = httpx.post(
            f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
        )
        response.raise_for_status()
        return response.json()["access_token"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_window(config: Any, start: datetime) -> None:
    """Log what the champion answers for a drifted window, as the model server does."""
    from served import log_served

    from mlops_datagen import generate_frames

    ((_, frame),) = generate_frames(
        PIPELINE, batches=1, rows=WINDOW_ROWS, seed=21, feature_drift=2.0, drift_from=0
    )
    log_served(config, frame, start, "ui")


def seed_models(landing: Path) -> None:
    """Champion v1, rejected challenger v2 and one monitored window, in the current MLOPS_HOME."""
    from airflow.dag_processing.dagbag import DagBag

    from mlops.config import load_config
    from mlops.services import monitor as monitoring
    from mlops_datagen import generate_batches

    first, second = generate_batches(PIPELINE, landing, batches=2, seed=7)
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    training = bag.get_dag(f"{PIPELINE}_training")
    run = training.test(run_conf={"data_uri": str(first), "model": None, "reason": "first batch"})
    assert run.state == "success"
    worse = {"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
    run = training.test(run_conf={"data_uri": str(second), "model": worse, "reason": "a worse model"})
    assert run.state == "success"
    config = load_config(REPO / "include" / "pipelines" / f"{PIPELINE}.yaml")
    _serve_window(config, WINDOW_START)
    monitoring.monitor_window(config, WINDOW_START, WINDOW_START + timedelta(days=1))


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"airflow api-server exited ({process.returncode}):\n{log_path.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(
        f"airflow api-server not healthy after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}"
    )


def start_models_server(root: Path) -> Iterator[ModelsServer]:
    """Start ``airflow api-server`` (SimpleAuthManager, one user) over an MLflow store with real models."""
    home = root / "mlops"
    home.mkdir()
    password = secrets.token_urlsafe(12)
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({USER: password}))
    jwt_secret = secrets.token_urlsafe(64)  # HS512 wants 64 bytes or more
    port = _free_port()
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLOPS_PIPELINES_DIR": str(REPO / "include" / "pipelines"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:{ROLE}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "MLOPS_MLFLOW_UI_URL": "http://127.0.0.1:5000",
    }
    log_path = root / "api-server.log"
    airflow = Path(sys.executable).parent / "airflow"
    with log_path.open("w") as log_file:
        # Started first: it boots (~20 s) while the models train in this process.
        process = subprocess.Popen(
            [str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLOPS_HOME", str(home))
            patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
            patch.delenv("MLOPS_STORE_URI", raising=False)
            patch.delenv("MLOPS_ARTIFACT_ROOT", raising=False)
            seed_models(root / "landing")
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process, log_path)
        yield ModelsServer(url, USER, password, jwt_secret, home, log_path)
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own process group: SIGTERM, then SIGKILL after 30 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
