"""Shared fixtures (loaded by tests/conftest.py): pipeline configs, generated batches, a moto S3 server and fast
fresh MLflow stores.

Migrating a new MLflow SQLite database takes a second or two; copying an already migrated empty one takes a few
milliseconds. ``store_home`` and ``isolated_home`` give each test (or module) its own fresh store that way.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops.config import PipelineConfig, load_config

REPO = Path(__file__).resolve().parents[1]
PIPELINES = REPO / "include" / "pipelines"


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow SQLite database, created once per session."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow-template")
    path = folder / "mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the default experiment's artifact location is relative to the working directory
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@contextlib.contextmanager
def isolated_home(home: Path, template: Path) -> Iterator[Path]:
    """Point MLOPS_HOME and MLFLOW_TRACKING_URI at ``home`` (with a copy of ``template``) until exit."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        mp.delenv("MLOPS_STORE_URI", raising=False)
        mp.delenv("MLOPS_ARTIFACT_ROOT", raising=False)
        yield home


@pytest.fixture
def store_home(mlops_home: Path, mlflow_template: Path) -> Path:
    """``mlops_home`` with its MLflow store already migrated (a copy of the session template)."""
    shutil.copyfile(mlflow_template, mlops_home / "mlflow.db")
    return mlops_home


@pytest.fixture(scope="session")
def breast_cancer() -> PipelineConfig:
    return load_config(PIPELINES / "breast_cancer.yaml")


@pytest.fixture(scope="session")
def bc_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small, valid breast_cancer batches (80 distinct rows each). Read them; never change them."""
    from mlops_datagen import generate_batches

    return generate_batches("breast_cancer", tmp_path_factory.mktemp("landing"), batches=3, rows=80, seed=3)


# A real S3 API: moto's server on a free local port -------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto S3 server running in a thread for the whole session (started on first use)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the moto server; boto3 reaches it through the standard AWS_* variables."""
    import boto3

    for key, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    # boto3's default session caches what it read from the environment: start from a clean one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    bucket = f"mlops-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[Path]:
    """A fresh MLOPS_HOME and MLflow store shared by the tests of one module (for expensive set-ups)."""
    with isolated_home(tmp_path_factory.mktemp("module") / "mlops", mlflow_template) as home:
        yield home
