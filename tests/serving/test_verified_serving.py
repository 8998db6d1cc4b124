"""The model server refuses a new champion whose files changed after registration (or that has no digest):
the old champion serves on and the failure callback (the server's alert) is called once."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from artifacts import model_file, three_versions
from starlette.testclient import TestClient

from mlops import registry
from mlops.config import PipelineConfig
from mlops.registry import ModelIntegrityError
from mlops.serving.app import create_app
from mlops.serving.holder import CHAMPION, ModelHolder, load_version

pytestmark = pytest.mark.unit
NAME = "breast_cancer"


@contextlib.contextmanager
def replaced(version: int, by: int) -> Iterator[None]:
    """Version ``version``'s model file swapped for ``by``'s: a valid model, just not the registered one."""
    path = model_file(NAME, version)
    original = path.read_bytes()
    shutil.copyfile(model_file(NAME, by), path)
    try:
        yield
    finally:
        path.write_bytes(original)


@pytest.fixture(scope="module")
def config(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> PipelineConfig:
    """Versions 1, 2 and 3 (one batch each); v1 is the champion."""
    config = three_versions(breast_cancer, bc_files)
    return config


@pytest.fixture
def record(bc_files: list[Path], config: PipelineConfig) -> dict[str, float]:
    row = pd.read_csv(bc_files[2]).drop(columns=[config.target]).iloc[0]
    return {str(k): float(v) for k, v in row.items()}


def _serving_v1(config: PipelineConfig, failures: list[str]) -> ModelHolder:
    holder = ModelHolder(config, on_failure=failures.append)
    holder.refresh()
    assert holder.wait(120) and holder.champion is not None and holder.champion.version == 1
    return holder


def _point_champion_at(version: int) -> None:
    registry.client().set_registered_model_alias(NAME, CHAMPION, str(version))


def test_the_loader_refuses_a_swapped_model_file(config: PipelineConfig) -> None:
    with replaced(2, by=3), pytest.raises(ModelIntegrityError, match="v2: its files do not match") as refused:
        load_version(config, 2, CHAMPION)
    assert "changed: model.skops" in str(refused.value)
    assert load_version(config, 2, CHAMPION).version == 2


def test_a_tampered_champion_never_serves_and_the_server_alerts(
    config: PipelineConfig, record: dict[str, float]
) -> None:
    failures: list[str] = []
    holder = _serving_v1(config, failures)
    app = create_app(config, holder=holder, start_polling=False)
    try:
        with replaced(2, by=3):
            _point_champion_at(2)
            holder.refresh()
            assert holder.wait(120)
        with TestClient(app) as http:
            answer = http.post("/predict", json={"record": record})
            assert answer.status_code == 200 and answer.json()["model_version"] == 1
            assert http.get("/model").json()["version"] == 1
        assert holder.champion is not None and holder.champion.version == 1
        assert len(failures) == 1
        assert "'breast_cancer' v2 (alias champion) could not be loaded" in failures[0]
        assert "do not match the digest recorded at registration" in failures[0]
        assert "v1 serves on" in failures[0]
        assert holder.errors[CHAMPION].version == 2 and holder.load_failures[CHAMPION] == 1
    finally:
        _point_champion_at(1)
    holder.refresh()
    holder.wait(30)
    assert holder.errors == {} and holder.champion.version == 1


def test_a_champion_without_a_digest_never_serves(config: PipelineConfig) -> None:
    failures: list[str] = []
    holder = _serving_v1(config, failures)
    digest = registry.get_version(NAME, 3).tags[registry.DIGEST_TAG]
    registry.client().delete_model_version_tag(NAME, "3", registry.DIGEST_TAG)
    try:
        _point_champion_at(3)
        holder.refresh()
        assert holder.wait(120)
        assert holder.champion is not None and holder.champion.version == 1
        assert len(failures) == 1 and "v3 has no model digest" in failures[0]
    finally:
        _point_champion_at(1)
        registry.set_version_tags(NAME, 3, {registry.DIGEST_TAG: digest})
