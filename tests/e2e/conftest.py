"""Fixtures of the end-to-end tests: the real DAGs, and sample batches written once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagtools import parse_dags


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path) -> Any:
    bag = parse_dags()
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="session")
def bc_batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two dated breast-cancer batches, and a corrupted copy of the second per corruption kind."""
    from mlops_datagen import CORRUPTIONS, corrupt_batch, generate_batches

    landing = tmp_path_factory.mktemp("landing")
    first, second = generate_batches("breast_cancer", landing, batches=2, seed=7)
    batches = {"first": first, "second": second}
    for kind in CORRUPTIONS:
        batches[kind] = corrupt_batch(second, landing / f"corrupt-{kind}.csv", kind)
    return batches
