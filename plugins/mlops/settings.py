"""Where things live, read from the environment each time it is asked.

Standard names first (``MLFLOW_TRACKING_URI``, ``AIRFLOW_HOME``, ``AWS_*``), ``MLOPS_`` otherwise. The
embedded default keeps everything under ``MLOPS_HOME``: an MLflow SQLite store, its artifacts, the data store
(batches, quarantine, reports) and the Airflow home.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The checkout this package is installed from (editable install), if any."""
    candidate = PACKAGE_DIR.parent.parent
    return candidate if (candidate / "pyproject.toml").exists() and (candidate / "dags").is_dir() else None


def mlops_home() -> Path:
    """Root of the embedded default's state (``MLOPS_HOME``; default ``<checkout>/.mlops``)."""
    if env := os.environ.get("MLOPS_HOME"):
        return Path(env).expanduser().resolve()
    root = repo_root()
    return (root / ".mlops") if root else Path.home() / ".mlops"


def pipelines_dir() -> Path:
    """Folder of pipeline YAML files (``MLOPS_PIPELINES_DIR``; default ``<checkout>/include/pipelines``)."""
    if env := os.environ.get("MLOPS_PIPELINES_DIR"):
        return Path(env).expanduser().resolve()
    root = repo_root()
    return (root / "include" / "pipelines") if root else mlops_home() / "pipelines"


def tracking_uri() -> str:
    """MLflow tracking URI (``MLFLOW_TRACKING_URI``; default a SQLite store in ``MLOPS_HOME``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlops_home() / 'mlflow.db'}"


def artifact_root() -> str:
    """Where new MLflow experiments keep their artifacts (``MLOPS_ARTIFACT_ROOT``)."""
    return os.environ.get("MLOPS_ARTIFACT_ROOT") or (mlops_home() / "mlartifacts").as_uri()


def lock_uri() -> str:
    """Where promotions take their lock (``MLOPS_LOCK_URI``; default the tracking URI).

    A Postgres URI gives an advisory lock that every worker shares; the production stack points it at the
    MLflow database, because the tracking URI there is the MLflow server's ``http://`` address.
    """
    return os.environ.get("MLOPS_LOCK_URI") or tracking_uri()


def store_uri() -> str:
    """Root URI of the data store: batches, quarantine, reports (``MLOPS_STORE_URI``; file:// or s3://)."""
    return (os.environ.get("MLOPS_STORE_URI") or (mlops_home() / "store").as_uri()).rstrip("/")


def mlflow_ui_url() -> str:
    """Base URL of the MLflow UI, used in links in alerts (``MLOPS_MLFLOW_UI_URL``)."""
    return os.environ.get("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")


def airflow_ui_url() -> str:
    """Base URL of the Airflow UI, used in links in alerts (``MLOPS_AIRFLOW_UI_URL``)."""
    return os.environ.get("MLOPS_AIRFLOW_UI_URL", "http://127.0.0.1:8080").rstrip("/")


def airflow_env(home: Path | None = None) -> dict[str, str]:
    """Environment for an embedded Airflow on this checkout (SQLite, LocalExecutor, our DAGs and plugin)."""
    home = home or mlops_home()
    root = repo_root()
    env = {
        "MLOPS_HOME": str(home),
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(home / "airflow")),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    if root:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(root / "dags")
    return env
