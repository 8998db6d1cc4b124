"""Test environment: a throw-away Airflow home (SQLite) and MLflow store per session, set before Airflow loads.

Each test that touches MLflow or the data store gets its own MLOPS_HOME through the ``mlops_home`` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))

# Airflow reads its configuration when first imported: set it before any test module imports it.
os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "MLOPS_HOME": str(_SESSION_DIR / "mlops"),
        "MLOPS_PIPELINES_DIR": str(REPO / "include" / "pipelines"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_DIR / 'mlops' / 'mlflow.db'}",
        "GIT_PYTHON_REFRESH": "quiet",
    }
)
(_SESSION_DIR / "mlops").mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata database (SQLite) for the whole session."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME with its own MLflow store and data store for one test."""
    home = tmp_path / "mlops"
    home.mkdir()
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.delenv("MLOPS_STORE_URI", raising=False)
    monkeypatch.delenv("MLOPS_ARTIFACT_ROOT", raising=False)
    return home


# Real alert receivers on 127.0.0.1 (an SMTP server and an HTTP webhook), shared by unit and e2e tests.
import receivers  # noqa: E402  (tests/ is on sys.path; Airflow's env must be set first)

smtp_server = receivers.smtp_server
webhook_server = receivers.webhook_server
