"""The one way into MLflow: its tracking URI from the settings, the fluent API and a client pointed at it.

Every module that reads or writes runs, models or the registry starts here, so where MLflow lives is decided
once (``MLFLOW_TRACKING_URI``, or the embedded default's SQLite store under ``MLOPS_HOME``).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from mlops.config import settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


def mlflow() -> ModuleType:
    """The ``mlflow`` module with its tracking URI set from the settings (read afresh on every call)."""
    import mlflow as mlflow_module

    mlflow_module.set_tracking_uri(settings.tracking_uri())
    return mlflow_module


def client() -> MlflowClient:
    """An ``MlflowClient`` on the configured tracking store and registry."""
    return mlflow().MlflowClient()
