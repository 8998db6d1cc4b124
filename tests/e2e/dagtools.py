"""Helpers of the end-to-end tests: parse dags/ as Airflow does, run a DAG, read what it left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def parse_dags() -> Any:
    """A DagBag of the real dags/ folder (reads MLOPS_PIPELINES_DIR as Airflow would)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def model_versions(name: str) -> list[Any]:
    from mlops import registry

    found = registry.client().search_model_versions(f"name='{name}'")
    return sorted(found, key=lambda v: int(v.version))


def champion(name: str) -> int | None:
    from mlops import registry

    return registry.alias_version(name, registry.CHAMPION)
