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

from typing import TYPE_CHECKING, Any

from mlops.config import PipelineConfig, SliceRule
from mlops.core.categories import canonical_categories
from mlops.core.slices import SliceMetrics

if TYPE_CHECKING:
    import pandas as pd


#: Metrics that mean nothing on a slice holding one class only.
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
    values = (
        canonical_categories(rule.values) if rule.values is not None else sorted(column.dropna().unique())
    )
    return [(f"{rule.feature}={value}", column == value) for value in values]


def slice_metrics(config: PipelineConfig, model: Any, holdout: pd.DataFrame) -> list[SliceMetrics]:
    """The model's metrics on every slice declared in ``gate.slices`` (empty slices included, with 0 rows)."""
    from mlops.ml import training

    results = []
    for rule in config.gate.slices:
        for label, mask in slice_masks(rule, holdout):
            part = holdout[mask.fillna(False).astype(bool)]
            classes = int(part[config.target].nunique()) if config.task == "classification" else 0
            metrics = training.compute_metrics(config, model, part) if len(part) else {}
            results.append(SliceMetrics(rule.feature, label, len(part), classes, metrics))
    return results
