"""The gate's pure rules: thresholds and regressions on metrics, and the verdict's renderings."""

from __future__ import annotations

import json
import math

import pytest

from mlops.config import Gate, MetricRule
from mlops.core.gate import Check, Verdict, evaluate_gate

CLASSIFICATION = Gate(
    primary_metric="roc_auc",
    threshold=0.9,
    max_regression=0.02,
    secondary=[MetricRule(metric="recall", threshold=0.75)],
)
REGRESSION = Gate(
    primary_metric="rmse",
    threshold=25,
    max_regression=1.5,
    secondary=[MetricRule(metric="r2", threshold=0.6)],
)


def _failed(checks: list[Check]) -> list[tuple[str, str]]:
    return [(c.metric, c.rule) for c in checks if not c.passed]


# evaluate_gate ------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_first_model_faces_the_thresholds_only() -> None:
    passed, checks = evaluate_gate(CLASSIFICATION, {"roc_auc": 0.95, "recall": 0.8}, None)
    assert passed
    assert [(c.metric, c.rule) for c in checks] == [("roc_auc", "threshold"), ("recall", "threshold")]
    assert checks[0].message == "roc_auc 0.9500 meets the minimum 0.9"


@pytest.mark.unit
def test_first_model_below_a_threshold_is_rejected() -> None:
    passed, checks = evaluate_gate(CLASSIFICATION, {"roc_auc": 0.85, "recall": 0.8}, None)
    assert not passed
    assert _failed(checks) == [("roc_auc", "threshold")]
    assert "roc_auc 0.8500 below the minimum 0.9" in checks[0].message


@pytest.mark.unit
def test_higher_is_better_regression_against_the_champion() -> None:
    champion = {"roc_auc": 0.96, "recall": 0.9}
    passed, checks = evaluate_gate(CLASSIFICATION, {"roc_auc": 0.95, "recall": 0.9}, champion)
    assert passed
    assert ("roc_auc", "regression") in [(c.metric, c.rule) for c in checks]

    passed, checks = evaluate_gate(CLASSIFICATION, {"roc_auc": 0.93, "recall": 0.9}, champion)
    assert not passed
    assert _failed(checks) == [("roc_auc", "regression")]
    assert "0.0300 worse (largest allowed regression 0.02)" in next(c.message for c in checks if not c.passed)


@pytest.mark.unit
def test_lower_is_better_threshold_is_a_maximum() -> None:
    passed, checks = evaluate_gate(REGRESSION, {"rmse": 24.0, "r2": 0.7}, None)
    assert passed
    assert checks[0].message == "rmse 24.0000 within the maximum 25"

    passed, checks = evaluate_gate(REGRESSION, {"rmse": 26.0, "r2": 0.7}, None)
    assert not passed
    assert _failed(checks) == [("rmse", "threshold")]
    assert checks[0].message == "rmse 26.0000 above the maximum 25"


@pytest.mark.unit
def test_lower_is_better_regression_against_the_champion() -> None:
    champion = {"rmse": 15.0, "r2": 0.8}
    better, checks = evaluate_gate(REGRESSION, {"rmse": 14.0, "r2": 0.8}, champion)
    assert better
    assert "1.0000 better" in next(c.message for c in checks if c.rule == "regression")

    worse, checks = evaluate_gate(REGRESSION, {"rmse": 16.6, "r2": 0.8}, champion)
    assert not worse
    assert _failed(checks) == [("rmse", "regression")]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("gate", "challenger", "champion"),
    [
        (CLASSIFICATION, {"roc_auc": 0.93, "recall": 0.8}, {"roc_auc": 0.95, "recall": 0.8}),
        (REGRESSION, {"rmse": 16.5, "r2": 0.7}, {"rmse": 15.0, "r2": 0.7}),
        (Gate(primary_metric="f1", threshold=0.5, max_regression=0.0), {"f1": 0.8}, {"f1": 0.8}),
    ],
    ids=["roc_auc", "rmse", "no-regression-allowed"],
)
def test_a_regression_exactly_at_the_limit_passes(gate: Gate, challenger: dict, champion: dict) -> None:
    passed, checks = evaluate_gate(gate, challenger, champion)
    assert passed, [c.message for c in checks]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("gate", "challenger", "champion"),
    [
        (CLASSIFICATION, {"roc_auc": 0.9299, "recall": 0.8}, {"roc_auc": 0.95, "recall": 0.8}),
        (REGRESSION, {"rmse": 16.5001, "r2": 0.7}, {"rmse": 15.0, "r2": 0.7}),
        (Gate(primary_metric="f1", threshold=0.5, max_regression=0.0), {"f1": 0.7999}, {"f1": 0.8}),
    ],
    ids=["roc_auc", "rmse", "no-regression-allowed"],
)
def test_a_regression_just_past_the_limit_fails(gate: Gate, challenger: dict, champion: dict) -> None:
    passed, checks = evaluate_gate(gate, challenger, champion)
    assert not passed
    assert [rule for _, rule in _failed(checks)] == ["regression"]


@pytest.mark.unit
def test_a_threshold_met_exactly_passes() -> None:
    assert evaluate_gate(CLASSIFICATION, {"roc_auc": 0.9, "recall": 0.75}, None)[0]
    assert evaluate_gate(REGRESSION, {"rmse": 25.0, "r2": 0.6}, None)[0]


@pytest.mark.unit
def test_a_failing_secondary_metric_rejects() -> None:
    passed, checks = evaluate_gate(
        CLASSIFICATION, {"roc_auc": 0.99, "recall": 0.6}, {"roc_auc": 0.95, "recall": 0.9}
    )
    assert not passed
    assert _failed(checks) == [("recall", "threshold")]


@pytest.mark.unit
def test_a_secondary_metric_with_a_regression_limit() -> None:
    gate = Gate(
        primary_metric="rmse", threshold=100, secondary=[MetricRule(metric="mae", max_regression=0.5)]
    )
    assert evaluate_gate(gate, {"rmse": 10.0, "mae": 8.4}, {"rmse": 10.0, "mae": 8.0})[0]
    passed, checks = evaluate_gate(gate, {"rmse": 10.0, "mae": 8.6}, {"rmse": 10.0, "mae": 8.0})
    assert _failed(checks) == [("mae", "regression")] and not passed


@pytest.mark.unit
@pytest.mark.parametrize("value", [None, math.nan], ids=["missing", "nan"])
def test_a_missing_or_nan_metric_rejects(value: float | None) -> None:
    challenger = {"roc_auc": 0.99} if value is None else {"roc_auc": 0.99, "recall": value}
    for champion in (None, {"roc_auc": 0.99, "recall": 0.9}):
        passed, checks = evaluate_gate(CLASSIFICATION, challenger, champion)
        assert not passed
        assert _failed(checks) == [("recall", "available")]
        assert "recall could not be computed" in [c.message for c in checks if not c.passed][0]


# Verdict ------------------------------------------------------------------------------------------------------
def _verdict(passed: bool, champion_version: int | None) -> Verdict:
    challenger = {"roc_auc": 0.95, "recall": 0.8 if passed else 0.5}
    champion = {"roc_auc": 0.96, "recall": 0.85} if champion_version else None
    ok, checks = evaluate_gate(CLASSIFICATION, challenger, champion)
    assert ok == passed
    return Verdict(
        pipeline="breast_cancer",
        passed=ok,
        challenger_version=2,
        champion_version=champion_version,
        primary_metric="roc_auc",
        challenger_metrics=challenger,
        champion_metrics=champion,
        checks=checks,
        evaluated_at="2026-01-02T03:04:05+00:00",
    )


@pytest.mark.unit
def test_verdict_tags_of_a_passed_gate() -> None:
    verdict = _verdict(True, 1)
    tags = verdict.to_tags()
    assert tags["gate.verdict"] == "passed"
    assert tags["gate.champion_version"] == "1"
    assert tags["gate.primary_metric"] == "roc_auc"
    assert tags["gate.evaluated_at"] == "2026-01-02T03:04:05+00:00"
    assert (tags["gate.challenger.roc_auc"], tags["gate.champion.roc_auc"]) == ("0.95", "0.96")
    assert tags["gate.reasons"].split(" | ") == [c.message for c in verdict.checks]  # all checks when passed


@pytest.mark.unit
def test_verdict_tags_of_a_rejected_first_model() -> None:
    verdict = _verdict(False, None)
    tags = verdict.to_tags()
    assert tags["gate.verdict"] == "rejected"
    assert tags["gate.champion_version"] == "none"
    assert tags["gate.reasons"] == "recall 0.5000 below the minimum 0.75"  # only what failed
    assert not [k for k in tags if k.startswith("gate.champion.")]
    data = json.loads(json.dumps(verdict.to_dict()))
    assert (data["status"], data["reasons"]) == ("rejected", ["recall 0.5000 below the minimum 0.75"])


@pytest.mark.unit
def test_verdict_markdown() -> None:
    passed = _verdict(True, 1).to_markdown()
    assert passed.startswith("# Gate verdict: PASSED\n")
    assert "challenger v2 against champion v1" in passed
    assert "| roc_auc | regression | pass |" in passed
    assert "| roc_auc | 0.9500 | 0.9600 |" in passed

    rejected = _verdict(False, None).to_markdown()
    assert rejected.startswith("# Gate verdict: REJECTED\n")
    assert "against no champion (first model)" in rejected
    assert "| recall | threshold | FAIL | recall 0.5000 below the minimum 0.75 |" in rejected
    assert "| recall | 0.5000 | - |" in rejected
