"""Slice and fairness rules (pure): each slice's metrics against its threshold, the gap between groups.

The per-slice metrics are computed in :mod:`mlops.ml.slices`; the rules here only read those numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mlops.config import Gate
from mlops.core.gate import Check, regression_check, threshold_check

#: Metrics that mean nothing on a slice holding one class only.
NEEDS_BOTH_CLASSES = frozenset({"precision", "recall", "f1", "roc_auc", "average_precision", "log_loss"})


@dataclass(frozen=True)
class SliceMetrics:
    """One slice of the holdout and the metrics of a model on it."""

    feature: str
    label: str  # e.g. "card_present=no" or "amount in [0, 50)"
    rows: int
    classes: int  # distinct target values in the slice (0 for regression)
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SliceMetrics:
        return cls(**data)


def _value(metrics: dict[str, float], metric: str) -> float | None:
    value = metrics.get(metric)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _measurable(rule_min_rows: int, part: SliceMetrics, metric: str) -> str | None:
    """Why a slice cannot be gated on ``metric`` (None when it can)."""
    if part.rows < rule_min_rows:
        return f"{part.rows} holdout rows, fewer than min_rows {rule_min_rows}"
    if metric in NEEDS_BOTH_CLASSES and part.classes == 1:
        return "one class only in the slice"
    if _value(part.metrics, metric) is None:
        return f"{metric} could not be computed"
    return None


def evaluate_slices(
    gate: Gate, challenger: list[SliceMetrics], champion: list[SliceMetrics] | None
) -> list[Check]:
    """Apply ``gate.slices`` and ``gate.fairness`` to per-slice metrics. Every message names the slice."""

    checks: list[Check] = []
    by_label = {(s.feature, s.label): s for s in champion or []}
    rules = {rule.feature: rule for rule in gate.slices}
    for rule in gate.slices:
        metric = rule.metric or gate.primary_metric
        for part in (s for s in challenger if s.feature == rule.feature):
            why_not = _measurable(rule.min_rows, part, metric)
            if why_not:
                checks.append(Check(metric, "slice", True, f"slice {part.label}: not gated ({why_not})"))
                continue
            value = part.metrics[metric]
            if rule.threshold is not None:
                checks.append(
                    threshold_check(
                        metric,
                        value,
                        rule.threshold,
                        rule="slice",
                        where=f" on slice {part.label} (n={part.rows})",
                    )
                )
            reference = by_label.get((part.feature, part.label))
            if rule.max_regression is not None and reference is not None:
                if _measurable(rule.min_rows, reference, metric):
                    continue
                checks.append(
                    regression_check(
                        metric,
                        value,
                        reference.metrics[metric],
                        rule.max_regression,
                        rule="slice_regression",
                        where=f" on slice {part.label}",
                    )
                )
    if gate.fairness is not None:
        metric = gate.fairness.metric or gate.primary_metric
        for feature in gate.fairness.features or list(rules):
            rule = rules[feature]
            measured = [
                s for s in challenger if s.feature == feature and not _measurable(rule.min_rows, s, metric)
            ]
            if len(measured) < 2:
                checks.append(
                    Check(
                        metric,
                        "fairness",
                        True,
                        f"{metric} gap across {feature}: fewer than 2 slices to compare",
                    )
                )
                continue
            best = max(measured, key=lambda s: s.metrics[metric])
            worst = min(measured, key=lambda s: s.metrics[metric])
            gap = best.metrics[metric] - worst.metrics[metric]
            ok = gap <= gate.fairness.max_gap + 1e-12
            checks.append(
                Check(
                    metric,
                    "fairness",
                    ok,
                    f"{metric} gap {gap:.4f} between slice {best.label} ({best.metrics[metric]:.4f}) and slice "
                    f"{worst.label} ({worst.metrics[metric]:.4f}) {'within' if ok else 'exceeds'} the largest "
                    f"allowed gap {gate.fairness.max_gap:g}",
                )
            )
    return checks
