"""Slice and fairness gates: the gate's metrics per value of a categorical feature or per bin of a numeric one.

A model can be good on average and bad for a group (TFX's "sliced" evaluation). ``gate.slices`` declares the
groups and a threshold (and optionally an allowed regression against the champion) each must meet;
``gate.fairness`` bounds the gap of a metric between the best and the worst group of a feature. Slices with
too few holdout rows, or with one class only where the metric needs two, are reported and not gated: their
numbers would be noise.

The metrics are computed here (they need the model and the holdout); the rules in :func:`evaluate_slices` are
pure functions of those numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops.config import Gate, PipelineConfig, SliceRule

if TYPE_CHECKING:
    import pandas as pd

    from mlops.gate import Check

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


def _edge(value: float) -> str:
    return f"{value:g}"


def slice_masks(rule: SliceRule, frame: pd.DataFrame) -> list[tuple[str, Any]]:
    """(label, boolean mask) of each slice a rule defines on a prepared frame."""
    column = frame[rule.feature]
    if rule.bins is not None:
        masks = []
        edges = rule.bins
        for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            last = i == len(edges) - 2
            mask = (column >= low) & ((column <= high) if last else (column < high))
            closing = "]" if last else ")"
            masks.append((f"{rule.feature} in [{_edge(low)}, {_edge(high)}{closing}", mask))
        return masks
    values = [str(v) for v in rule.values] if rule.values is not None else sorted(column.dropna().unique())
    return [(f"{rule.feature}={value}", column == value) for value in values]


def slice_metrics(config: PipelineConfig, model: Any, holdout: pd.DataFrame) -> list[SliceMetrics]:
    """The model's metrics on every slice declared in ``gate.slices`` (empty slices included, with 0 rows)."""
    from mlops import training

    results = []
    for rule in config.gate.slices:
        for label, mask in slice_masks(rule, holdout):
            part = holdout[mask.fillna(False).astype(bool)]
            classes = int(part[config.target].nunique()) if config.task == "classification" else 0
            metrics = training.compute_metrics(config, model, part) if len(part) else {}
            results.append(SliceMetrics(rule.feature, label, len(part), classes, metrics))
    return results


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
    from mlops.gate import Check, regression_check, threshold_check

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
