"""Slice and fairness gates: the config rules, the pure checks, and run_gate on a real registry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops import registry
from mlops.config import Fairness, Gate, PipelineConfig, SliceRule, load_config
from mlops.core.slices import SliceMetrics, evaluate_slices
from mlops.data.batches import ingest_batch, validate_and_file
from mlops.errors import ConfigError
from mlops.ml import training
from mlops.ml.slices import slice_masks
from mlops.services.gate import run_gate

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _gate(**extra: object) -> Gate:
    return Gate.model_validate({"primary_metric": "recall", "threshold": 0.5, **extra})


def _part(
    label: str, recall: float, rows: int = 100, classes: int = 2, feature: str = "card_present"
) -> SliceMetrics:
    return SliceMetrics(feature, f"{feature}={label}", rows, classes, {"recall": recall, "accuracy": 0.9})


# Pure checks ---------------------------------------------------------------------------------------------------
def test_a_slice_below_its_threshold_rejects_and_names_the_slice() -> None:
    gate = _gate(slices=[{"feature": "card_present", "threshold": 0.7}])
    checks = evaluate_slices(gate, [_part("yes", 0.9), _part("no", 0.62, rows=83)], None)
    failed = [c for c in checks if not c.passed]
    assert [c.rule for c in failed] == ["slice"]
    assert failed[0].message == "recall 0.6200 below the minimum 0.7 on slice card_present=no (n=83)"


def test_slices_too_small_or_with_one_class_are_reported_not_gated() -> None:
    gate = _gate(slices=[{"feature": "card_present", "threshold": 0.7, "min_rows": 30}])
    checks = evaluate_slices(gate, [_part("yes", 0.1, rows=12), _part("no", 0.0, classes=1)], None)
    assert all(c.passed for c in checks)
    assert [c.message for c in checks] == [
        "slice card_present=yes: not gated (12 holdout rows, fewer than min_rows 30)",
        "slice card_present=no: not gated (one class only in the slice)",
    ]


def test_a_lower_is_better_slice_threshold_is_a_maximum() -> None:
    gate = Gate.model_validate(
        {"primary_metric": "rmse", "threshold": 30, "slices": [{"feature": "store", "threshold": 20}]}
    )
    parts = [
        SliceMetrics("store", "store=S01", 50, 0, {"rmse": 18.0}),
        SliceMetrics("store", "store=S02", 50, 0, {"rmse": 24.5}),
    ]
    failed = [c.message for c in evaluate_slices(gate, parts, None) if not c.passed]
    assert failed == ["rmse 24.5000 above the maximum 20 on slice store=S02 (n=50)"]


def test_slice_regression_against_the_champion_on_the_same_slice() -> None:
    gate = _gate(slices=[{"feature": "card_present", "max_regression": 0.05}])
    champion = [_part("yes", 0.9), _part("no", 0.8)]
    checks = evaluate_slices(gate, [_part("yes", 0.92), _part("no", 0.7)], champion)
    failed = [c for c in checks if not c.passed]
    assert [c.rule for c in failed] == ["slice_regression"]
    assert "on slice card_present=no: 0.1000 worse (largest allowed regression 0.05)" in failed[0].message
    assert all(c.passed for c in evaluate_slices(gate, [_part("yes", 0.92), _part("no", 0.78)], champion))


def test_fairness_bounds_the_gap_between_the_best_and_worst_slice() -> None:
    gate = _gate(slices=[{"feature": "card_present"}], fairness={"max_gap": 0.1})
    checks = evaluate_slices(gate, [_part("yes", 0.92), _part("no", 0.74)], None)
    assert [(c.rule, c.passed) for c in checks] == [("fairness", False)]
    assert checks[0].message == (
        "recall gap 0.1800 between slice card_present=yes (0.9200) and slice card_present=no (0.7400) "
        "exceeds the largest allowed gap 0.1"
    )
    assert evaluate_slices(gate, [_part("yes", 0.92), _part("no", 0.85)], None)[0].passed
    lonely = evaluate_slices(gate, [_part("yes", 0.92), _part("no", 0.2, rows=5)], None)
    assert lonely[-1].passed and "fewer than 2 slices" in lonely[-1].message


def test_slice_masks_for_values_and_bins() -> None:
    frame = pd.DataFrame(
        {"amount": [1.0, 49.9, 50.0, 500.0, 900.0], "card_present": ["yes", "no", "no", "yes", "no"]}
    )
    bins = slice_masks(SliceRule(feature="amount", bins=[0, 50, 500]), frame)
    assert [(label, list(mask)) for label, mask in bins] == [
        ("amount in [0, 50)", [True, True, False, False, False]),
        ("amount in [50, 500]", [False, False, True, True, False]),  # the last bin is closed
    ]
    values = slice_masks(SliceRule(feature="card_present"), frame)
    assert [label for label, _ in values] == ["card_present=no", "card_present=yes"]
    chosen = slice_masks(SliceRule(feature="card_present", values=["no"]), frame)
    assert [(label, int(mask.sum())) for label, mask in chosen] == [("card_present=no", 3)]


# Config ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fraud() -> PipelineConfig:
    """The fraud example without its slices, as an existing config written before slices existed."""
    config = load_config(REPO / "include" / "pipelines" / "fraud_detection.yaml")
    return config.model_copy(update={"gate": config.gate.model_copy(update={"slices": [], "fairness": None})})


def _with_gate(config: PipelineConfig, **gate: object) -> dict:
    data = config.model_dump(mode="json")
    data["gate"].update(gate)
    return data


def test_existing_configs_stay_valid_and_slices_are_optional(fraud: PipelineConfig) -> None:
    assert PipelineConfig.model_validate(fraud.model_dump(mode="json")).gate.slices == []
    example = load_config(REPO / "include" / "pipelines" / "fraud_detection.yaml")
    assert [rule.feature for rule in example.gate.slices] == ["card_present"]
    ok = _with_gate(fraud, slices=[{"feature": "card_present", "values": ["yes", "no"], "threshold": 0.7},
                                   {"feature": "amount", "bins": [0, 100, 50000], "metric": "roc_auc"}],
                    fairness={"metric": "roc_auc", "max_gap": 0.1})  # fmt: skip
    parsed = PipelineConfig.model_validate(ok)
    assert parsed.gate.fairness == Fairness(metric="roc_auc", max_gap=0.1)


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        (
            {"slices": [{"feature": "nope"}]},
            "field 'gate.slices.0.feature': 'nope' is not a declared feature",
        ),
        (
            {"slices": [{"feature": "amount"}]},
            "field 'gate.slices.0.bins': numeric feature 'amount' needs bin edges",
        ),
        ({"slices": [{"feature": "country", "bins": [0, 1]}]}, "'country' is categorical; list its 'values'"),
        ({"slices": [{"feature": "country", "metric": "rmse"}]}, "'rmse' is not a classification metric"),
        (
            {"slices": [{"feature": "amount", "bins": [5, 1]}]},
            "bins must be at least two strictly ascending edges",
        ),
        ({"slices": [{"feature": "country", "values": ["US"], "bins": [1, 2]}]}, "not both"),
        ({"fairness": {"max_gap": 0.1}}, "field 'gate.fairness': needs at least one slice in gate.slices"),
        (
            {"slices": [{"feature": "country"}], "fairness": {"max_gap": 0.1, "features": ["hour"]}},
            "field 'gate.fairness.features': 'hour' is not in gate.slices",
        ),
        ({"slices": [{"feature": "country"}], "fairness": {"max_gap": -1}}, "gate.fairness.max_gap"),
    ],
)
def test_bad_slice_rules_are_config_errors(fraud: PipelineConfig, gate: dict, message: str) -> None:
    from mlops.config import parse_config

    with pytest.raises(ConfigError) as raised:
        parse_config(_with_gate(fraud, **gate), "fraud_detection.yaml")
    assert message in str(raised.value)


# run_gate with slices on a real registry ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demand(module_home: Path, tmp_path_factory: pytest.TempPathFactory) -> PipelineConfig:
    """A demand_forecast model (regression, categorical store) registered as v1."""
    from mlops_datagen import generate_batches

    config = load_config(REPO / "include" / "pipelines" / "demand_forecast.yaml")
    config = config.model_copy(update={"model": config.model.model_copy(update={"params": {
        "n_estimators": 20, "min_samples_leaf": 5, "n_jobs": 1, "random_state": 0}})})  # fmt: skip
    (path,) = generate_batches(
        "demand_forecast", tmp_path_factory.mktemp("demand"), batches=1, rows=1500, seed=5
    )
    batch = validate_and_file(config, ingest_batch(config, str(path))).batch
    result = training.train_model(config, batch)
    assert registry.register_version(config.name, result.model_uri, result.run_id, result.tags) == 1
    return config


def test_run_gate_rejects_a_slice_and_an_unfair_gap_naming_the_slices(demand: PipelineConfig) -> None:
    gate = demand.gate.model_copy(update={
        "threshold": 1000.0,
        "slices": [SliceRule(feature="store", threshold=0.5), SliceRule(feature="price", bins=[0, 5, 500], min_rows=5)],
        "fairness": Fairness(max_gap=0.0, features=["store"]),
    })  # fmt: skip
    verdict = run_gate(demand.model_copy(update={"gate": gate}), 1)

    assert not verdict.passed
    assert len(verdict.slices) == 5 + 2 and {s["label"] for s in verdict.slices} >= {
        "store=S01",
        "price in [0, 5)",
    }
    failed = [c for c in verdict.checks if not c.passed]
    assert {c.rule for c in failed} == {"slice", "fairness"}
    assert any("on slice store=S0" in r for r in verdict.reasons)
    assert any(r.startswith("rmse gap ") and "between slice store=" in r for r in verdict.reasons)
    tags = registry.get_version(demand.name, 1).tags
    assert tags["gate.verdict"] == "rejected" and "on slice store=" in tags["gate.reasons"]
    assert "## Slices" in verdict.to_markdown() and "| store=S01 |" in verdict.to_markdown()


def test_run_gate_passes_fair_enough_slices_and_the_card_shows_them(demand: PipelineConfig) -> None:
    from mlops.registry import cards

    gate = demand.gate.model_copy(update={
        "threshold": 1000.0,
        "slices": [SliceRule(feature="store", threshold=1000.0)],
        "fairness": Fairness(max_gap=1000.0),
    })  # fmt: skip
    verdict = run_gate(demand.model_copy(update={"gate": gate}), 1)
    assert verdict.passed, verdict.reasons
    assert sum(c.rule == "slice" for c in verdict.checks) == 5
    card = cards.build_card(demand.name, 1).to_markdown()
    assert "By slice (the gate's slices, on the same holdout):" in card
    assert "| store=S03 |" in card and "| rmse |" in card
