"""Fixtures of the Models page tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_server import ModelsServer, start_models_server


@pytest.fixture(scope="session")
def models_server(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelsServer]:
    """``airflow api-server`` (SimpleAuthManager, one user) over an MLflow store with real models."""
    yield from start_models_server(tmp_path_factory.mktemp("models-page"))
