"""The gate, the smoke test, reproduce and monitoring refuse a model whose files changed after registration
(or that has no digest), before deserialising it: a real MLflow store, a byte changed in the artifact store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from artifacts import model_file, tampered

from mlops import registry
from mlops.config import Gate, PipelineConfig
from mlops.data.batches import ingest_batch, validate_and_file
from mlops.errors import is_permanent
from mlops.ml import training
from mlops.monitoring.store import load_champion_model
from mlops.registry import ModelIntegrityError
from mlops.services import smoke
from mlops.services.deploy import smoke_test
from mlops.services.gate import run_gate
from mlops.services.reproduce import DIFFERENT, reproduce

pytestmark = pytest.mark.unit
NAME = "breast_cancer"
LENIENT = Gate(primary_metric="roc_auc", threshold=0.5, max_regression=0.5)


@contextlib.contextmanager
def without_digest(version: int) -> Iterator[None]:
    digest = registry.get_version(NAME, version).tags[registry.DIGEST_TAG]
    registry.client().delete_model_version_tag(NAME, str(version), registry.DIGEST_TAG)
    try:
        yield
    finally:
        registry.set_version_tags(NAME, version, {registry.DIGEST_TAG: digest})


@pytest.fixture(scope="module")
def config(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> PipelineConfig:
    """v1 (the champion) and v2 (the challenger), one batch each."""
    config = breast_cancer.model_copy(update={"gate": LENIENT})
    for number, path in enumerate(bc_files[:2], start=1):
        batch = validate_and_file(config, ingest_batch(config, str(path))).batch
        result = training.train_model(config, batch)
        assert registry.register_version(NAME, result.model_uri, result.run_id, result.tags) == number
    registry.promote(NAME, 1, None, audit={"reason": "first model"})
    return config


# The gate --------------------------------------------------------------------------------------------------------
def test_the_gate_refuses_a_tampered_challenger_and_records_nothing(config: PipelineConfig) -> None:
    with (
        tampered(model_file(NAME, 2)),
        pytest.raises(ModelIntegrityError, match="'breast_cancer' v2: its files do not match") as no,
    ):
        run_gate(config, 2)
    assert is_permanent(no.value)  # the task fails at once, no retries
    assert "gate.verdict" not in registry.get_version(NAME, 2).tags
    assert run_gate(config, 2).passed  # the untouched files pass


def test_the_gate_refuses_a_tampered_champion_instead_of_skipping_the_comparison(
    config: PipelineConfig,
) -> None:
    with (
        tampered(model_file(NAME, 1)),
        pytest.raises(ModelIntegrityError, match="v1: its files do not match"),
    ):
        run_gate(config, 2)


def test_the_gate_refuses_a_challenger_without_a_digest(config: PipelineConfig) -> None:
    with without_digest(2), pytest.raises(ModelIntegrityError, match="v2 has no model digest"):
        run_gate(config, 2)


# The smoke test --------------------------------------------------------------------------------------------------
def test_the_smoke_test_refuses_a_tampered_version(
    config: PipelineConfig, capsys: pytest.CaptureFixture
) -> None:
    assert smoke.check_version(NAME, 2, 20)["passed"]
    with tampered(model_file(NAME, 2)):
        with pytest.raises(ModelIntegrityError):
            smoke.check_version(NAME, 2, 20)
        assert smoke.main([NAME, "2", "--rows", "20"]) == 0
    verdict = json.loads(capsys.readouterr().out.split("SMOKE ", 1)[1])
    assert not verdict["passed"]
    assert verdict["reasons"][0].startswith("ModelIntegrityError: 'breast_cancer' v2: its files do not match")


def test_the_deploy_step_smoke_process_refuses_a_version_without_a_digest(config: PipelineConfig) -> None:
    with without_digest(2):
        result = smoke_test(config, 2)
    assert not result.passed
    assert "v2 has no model digest" in result.reasons[0]
    assert registry.get_version(NAME, 2).tags["smoke.passed"] == "false"


# Reproduce and monitoring ----------------------------------------------------------------------------------------
def test_reproduce_refuses_a_tampered_original_before_training(config: PipelineConfig) -> None:
    with tampered(model_file(NAME, 1)):
        result = reproduce(NAME, 1)
    assert result.outcome == DIFFERENT and not result.trained
    assert result.causes[0].startswith("model files changed: 'breast_cancer' v1: its files do not match")
    assert "nothing was trained" in result.notes[-1]
    assert registry.client().get_run(result.run_id).data.metrics == {}


def test_monitoring_refuses_a_tampered_champion(config: PipelineConfig) -> None:
    assert load_champion_model(config, 1) is not None
    with tampered(model_file(NAME, 1)), pytest.raises(ModelIntegrityError):
        load_champion_model(config, 1)
    with without_digest(1), pytest.raises(ModelIntegrityError, match="has no model digest"):
        load_champion_model(config, 1)
