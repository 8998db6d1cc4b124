"""Test environment: a throw-away Airflow home (SQLite) and MLflow store per session, set before Airflow loads.

Each test that touches MLflow or the data store gets its own MLOPS_HOME through the ``mlops_home`` fixture.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


#: Every test has exactly one of these (pyproject.toml describes them); ``unit`` is held to its promise below.
LAYERS = ("unit", "service", "e2e", "integration", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers are enforced at collection: a test with no layer marker, or with two, stops the run."""
    wrong = []
    for item in items:
        layers = [name for name in LAYERS if item.get_closest_marker(name) is not None]
        if len(layers) != 1:
            wrong.append(f"{item.nodeid}: {', '.join(layers) or 'no layer marker'}")
    if wrong:
        raise pytest.UsageError(
            f"every test needs exactly one of the markers {', '.join(LAYERS)}:\n  " + "\n  ".join(wrong)
        )


class UnitBoundaryError(AssertionError):
    """A ``unit`` test reached outside its process: the network, Postgres or Airflow's database."""


def _refuse_network(original: Any) -> Any:
    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise UnitBoundaryError(
                f"a unit test connected to {address!r}: mark it 'service' (real local services) or 'e2e'"
            )
        return original(sock, address)

    return connect


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A ``unit`` test fails when it opens a TCP connection (any host: Postgres, an S3 or SMTP server, a model
    server), needs Airflow's metadata database, or runs SQL against it."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    if "airflow_db" in request.fixturenames:
        raise UnitBoundaryError(
            "a unit test uses Airflow's metadata database (fixture airflow_db): mark it 'e2e'"
        )
    monkeypatch.setattr(socket.socket, "connect", _refuse_network(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse_network(socket.socket.connect_ex))
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    airflow_home = os.environ["AIRFLOW_HOME"]

    def refuse_airflow_db(connection: Any, *_: Any) -> None:
        url = connection.engine.url
        if url.get_backend_name() == "postgresql" or airflow_home in str(url.database or ""):
            raise UnitBoundaryError(
                f"a unit test ran SQL on {url.render_as_string()}: mark it 'service' or 'e2e'"
            )

    event.listen(Engine, "before_cursor_execute", refuse_airflow_db)
    try:
        yield
    finally:
        event.remove(Engine, "before_cursor_execute", refuse_airflow_db)


@pytest.fixture(scope="session", autouse=True)
def _batches_land_in_pytest_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests write their batches under pytest's temporary folders: that folder is a landing root of every
    pipeline (``MLOPS_DATA_ROOTS``, as an operator would add a drop folder), not the whole of ``/tmp``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_DATA_ROOTS", str(tmp_path_factory.getbasetemp()))
        yield


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

# Pipeline configs, generated batches, a moto S3 server and fresh MLflow stores, for every folder of tests.
pytest_plugins = ["shared_fixtures"]
