"""run_gate on a real registry: both models scored on one holdout, the verdict recorded, the champion it records scored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from mlops import registry
from mlops.config import Gate, MetricRule, PipelineConfig
from mlops.core.gate import Verdict
from mlops.data.batches import ingest_batch, validate_and_file
from mlops.ml import training
from mlops.services.gate import run_gate

# run_gate on a real registry ----------------------------------------------------------------------------------
LENIENT = Gate(
    primary_metric="roc_auc",
    threshold=0.5,
    max_regression=0.5,
    secondary=[MetricRule(metric="recall", threshold=0.0)],
)
STRICT = Gate(
    primary_metric="roc_auc", threshold=1.01, secondary=[MetricRule(metric="recall", threshold=0.0)]
)


@dataclass
class Gated:
    config: PipelineConfig
    first: Verdict  # v1's verdict, when there was no champion yet
    champion_run: str
    challenger_run: str


@pytest.fixture(scope="module")
def gated(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> Gated:
    """v1 trained on one batch, gated as the first model and promoted; v2 trained on two batches, registered."""
    config = breast_cancer.model_copy(update={"gate": LENIENT})
    runs = []
    for number, path in enumerate(bc_files[:2], start=1):
        batch = validate_and_file(config, ingest_batch(config, str(path))).batch
        result = training.train_model(config, batch)
        assert registry.register_version(config.name, result.model_uri, result.run_id, result.tags) == number
        runs.append(result.run_id)
        if number == 1:
            first = run_gate(config, 1)
            registry.promote(config.name, 1, None, audit={"reason": "first model"})
    return Gated(config, first, *runs)


@pytest.mark.unit
def test_run_gate_first_model(gated: Gated) -> None:
    verdict = gated.first
    assert (verdict.passed, verdict.champion_version, verdict.champion_metrics) == (True, None, None)
    assert {c.rule for c in verdict.checks} == {"threshold"}
    tags = registry.get_version("breast_cancer", 1).tags
    assert tags["gate.verdict"] == "passed" and tags["gate.champion_version"] == "none"
    assert "gate_passed" in [e["event"] for e in registry.audit_trail("breast_cancer", 1)]


@pytest.mark.unit
def test_run_gate_challenger_against_champion(gated: Gated, breast_cancer: PipelineConfig) -> None:
    verdict = run_gate(gated.config, 2)

    assert verdict.passed and verdict.champion_version == 1
    # Both scored on the challenger's holdout: the challenger's numbers are those of its training run.
    challenger_run = registry.client().get_run(gated.challenger_run)
    assert verdict.challenger_metrics == pytest.approx(challenger_run.data.metrics)
    holdout = training.load_holdout(gated.challenger_run)
    champion_model = mlflow.sklearn.load_model("models:/breast_cancer/1")
    assert verdict.champion_metrics == pytest.approx(
        training.compute_metrics(breast_cancer, champion_model, holdout)
    )

    tags = registry.get_version("breast_cancer", 2).tags
    assert tags["gate.verdict"] == "passed"
    assert tags["gate.champion_version"] == "1"
    assert tags["gate.reasons"] == " | ".join(verdict.reasons)
    assert float(tags["gate.champion.roc_auc"]) == pytest.approx(
        verdict.champion_metrics["roc_auc"], rel=1e-5
    )
    markdown = mlflow.artifacts.load_text(f"runs:/{gated.challenger_run}/gate/verdict.md")
    assert markdown == verdict.to_markdown()
    assert "challenger v2 against champion v1" in markdown
    stored = json.loads(mlflow.artifacts.load_text(f"runs:/{gated.challenger_run}/gate/verdict.json"))
    assert stored["status"] == "passed"
    assert registry.alias_version("breast_cancer", registry.CHAMPION) == 1  # the gate never promotes


@pytest.mark.unit
def test_run_gate_rejection_is_recorded_and_leaves_the_champion(gated: Gated) -> None:
    strict = gated.config.model_copy(update={"gate": STRICT})
    verdict = run_gate(strict, 2)

    assert not verdict.passed
    assert verdict.reasons == [f"roc_auc {verdict.challenger_metrics['roc_auc']:.4f} below the minimum 1.01"]
    tags = registry.get_version("breast_cancer", 2).tags
    assert tags["gate.verdict"] == "rejected"
    assert tags["gate.reasons"] == verdict.reasons[0]
    assert "# Gate verdict: REJECTED" in mlflow.artifacts.load_text(
        f"runs:/{gated.challenger_run}/gate/verdict.md"
    )
    assert "gate_rejected" in [e["event"] for e in registry.audit_trail("breast_cancer", 2)]
    assert registry.alias_version("breast_cancer", registry.CHAMPION) == 1


@pytest.mark.unit
def test_run_gate_scores_the_champion_it_records_when_the_alias_moves(
    gated: Gated, breast_cancer: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promotion lands between the gate's read of `champion` and its loading of the champion's model: the
    verdict must score the version it records (v1), not the one the alias points at by then (v2)."""
    real_alias_version = registry.alias_version
    moved: list[int] = []

    def read_then_move(name: str, alias: str) -> int | None:
        version = real_alias_version(name, alias)
        if alias == registry.CHAMPION and not moved:
            registry.client().set_registered_model_alias(name, registry.CHAMPION, "2")
            moved.append(2)
        return version

    monkeypatch.setattr(registry, "alias_version", read_then_move)
    try:
        verdict = run_gate(gated.config, 2)
    finally:
        registry.client().set_registered_model_alias("breast_cancer", registry.CHAMPION, "1")
    assert moved == [2], "the alias was never read: the test no longer exercises the race"
    assert verdict.champion_version == 1
    holdout = training.load_holdout(gated.challenger_run)
    v1 = training.compute_metrics(
        breast_cancer, mlflow.sklearn.load_model("models:/breast_cancer/1"), holdout
    )
    v2 = training.compute_metrics(
        breast_cancer, mlflow.sklearn.load_model("models:/breast_cancer/2"), holdout
    )
    assert v1 != pytest.approx(v2), "v1 and v2 score alike: the test could not tell them apart"
    assert verdict.champion_metrics == pytest.approx(v1)
    assert registry.get_version("breast_cancer", 2).tags["gate.champion_version"] == "1"
