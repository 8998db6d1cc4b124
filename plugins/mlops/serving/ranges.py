"""Inputs outside their feature's range: the config's bounds (``expectations.columns.<feature>``: ``min``,
``max``, ``allowed``) and, for a feature the config does not bound, the range seen in the serving version's
monitoring reference (:mod:`mlops.ml.reference`, a sample of its training rows).

The reference's range is the one the recorded baseline uses (:func:`mlops.data.baseline.profile_frame`):
numbers from the smallest to the largest value seen, widened by :data:`mlops.data.baseline.MARGIN` (25 %) of
that span on each side (not below 0 for a feature that never was); categories the values seen (a feature with
too many distinct values to be a category is not checked). It belongs to a version, so the holder builds it
when it loads one (:meth:`RangeCheck.for_version`); a version without a readable reference is checked against
the config's bounds only, and ``GET /model`` says so (``input_ranges``). The reference is a sample: a rare
category may be missing from it, and a live row with it is flagged, not refused, by default.

What the server does with them is ``serving.out_of_range``: ``reject`` answers 422 naming the first field and
row; ``flag`` (the default) answers, lists the rows in the response's ``out_of_range``, marks them in the
inference log (column ``out_of_range``) and counts them (``mlops_serving_out_of_range_rows_total``); ``off``
does not look. ``flag`` is the default because the bounds are the batch validation's, chosen to stop
unit mix-ups in training data: a live request past them is evidence for monitoring, and refusing it would turn
a drifting scanner into an outage. Nulls never count, as in validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.core.categories import canonical_category
from mlops.serving.inputs import InputError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig
    from mlops.serving.inputs import ParsedInput


CONFIG_SOURCE = "expectations.columns"


class OutOfRange(InputError):
    code = "OUT_OF_RANGE"


@dataclass(frozen=True)
class Bound:
    """One feature's range: ``min``/``max`` and ``allowed`` (as floats for numbers, canonical text else)."""

    name: str
    low: float | None = None
    high: float | None = None
    numbers: frozenset[float] | None = None
    categories: frozenset[str | None] | None = None
    #: Where the range comes from: ``expectations.columns`` or ``the reference of v<N>``.
    source: str = CONFIG_SOURCE

    def describe(self) -> str:
        parts = [f"min {self.low:g}"] if self.low is not None else []
        if self.high is not None:
            parts.append(f"max {self.high:g}")
        if self.categories is not None:
            parts.append("one of " + ", ".join(sorted(str(c) for c in self.categories)[:12]))
        return ", ".join(parts)


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RangeCheck:
    """The bounds of a pipeline's features, checked on a parsed batch (one vectorised pass per feature)."""

    def __init__(self, bounds: list[Bound], reference: str | None = None) -> None:
        self.bounds = bounds
        #: What the check knows of the version's reference (``GET /model``); None for the config's bounds only.
        self.reference = reference
        # The fast path: min/max of numeric features in one comparison of a (rows x features) block.
        ranged = [b for b in bounds if b.low is not None or b.high is not None]
        self._ranged = [b.name for b in ranged]
        self._lows = np.array([-np.inf if b.low is None else b.low for b in ranged])
        self._highs = np.array([np.inf if b.high is None else b.high for b in ranged])
        self._sets = [b for b in bounds if b.numbers is not None or b.categories is not None]

    @classmethod
    def from_config(cls, config: PipelineConfig) -> RangeCheck:
        features = {f.name for f in config.features}
        bounds = []
        if config.serving.out_of_range != "off":
            for name, rule in config.expectations.columns.items():
                if name not in features or (rule.min is None and rule.max is None and not rule.allowed):
                    continue
                numbers = categories = None
                if rule.allowed:
                    numbers = frozenset(f for f in map(_as_float, rule.allowed) if f is not None)
                    categories = frozenset(canonical_category(v) for v in rule.allowed)
                bounds.append(Bound(name, rule.min, rule.max, numbers, categories))
        return cls(bounds)

    @classmethod
    def for_version(cls, config: PipelineConfig, version: int, reference: pd.DataFrame | None) -> RangeCheck:
        """The config's bounds, and for every feature they leave unbounded the range seen in ``reference``
        (the version's monitoring reference; None when it has none: the config's bounds only)."""
        from mlops.data.baseline import MARGIN, profile_frame

        configured = cls.from_config(config)
        if config.serving.out_of_range == "off":
            return configured
        if reference is None:
            return cls(configured.bounds, f"v{version} has no readable reference: the config's bounds only")
        source = f"the reference of v{version}"
        profile = profile_frame(reference, config, batch=source, source=source)
        bounded = {b.name for b in configured.bounds}
        bounds = list(configured.bounds)
        for feature in config.features:
            if feature.name in bounded:
                continue
            if (seen := profile.numeric.get(feature.name)) is not None:
                bounds.append(Bound(feature.name, seen["min"], seen["max"], source=source))
            elif (values := profile.categorical.get(feature.name)) is not None:
                categories = frozenset(canonical_category(v) for v in values)
                bounds.append(Bound(feature.name, categories=categories, source=source))
        added = len(bounds) - len(configured.bounds)
        return cls(
            bounds,
            f"{added} feature(s) without configured bounds checked against {source} ({len(reference)} rows; "
            f"numbers widened by {MARGIN:.0%} of the span seen)",
        )

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for ``GET /model``: each checked feature's range and where it comes from."""
        return {
            "reference": self.reference,
            "features": {b.name: {"range": b.describe(), "source": b.source} for b in self.bounds},
        }

    def check(self, parsed: ParsedInput) -> tuple[list[int], InputError | None]:
        """The rows (0-based) with a value out of range, and a 422 naming the first such value."""
        if not self.bounds:
            return [], None
        if not self._sets and self._fast_path_clear(parsed):
            return [], None
        outside = np.zeros(parsed.rows, dtype=bool)
        first: tuple[int, str, Any, Bound] | None = None
        for bound in self.bounds:
            values = parsed.arrays.get(bound.name)
            if values is None:  # a model version that does not take this feature
                continue
            if values.dtype.kind == "f":
                bad = np.zeros(parsed.rows, dtype=bool)
                with np.errstate(invalid="ignore"):
                    if bound.low is not None:
                        bad |= values < bound.low
                    if bound.high is not None:
                        bad |= values > bound.high
                    if bound.numbers is not None:
                        bad |= ~np.isin(values, list(bound.numbers)) & ~np.isnan(values)
            elif bound.categories is not None:
                allowed = bound.categories
                bad = np.array([v == v and v not in allowed for v in values.tolist()], dtype=bool)
            else:
                continue
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                if first is None or row < first[0]:
                    first = (row, bound.name, values[row], bound)
                outside |= bad
        if first is None:
            return [], None
        row, name, value, bound = first
        error = OutOfRange(
            422,
            f"row {row}, field '{name}': {value!r} is out of range ({bound.describe()}; from "
            f"{bound.source}, refused because serving.out_of_range is reject)",
            name,
            row=row,
        )
        return np.flatnonzero(outside).tolist(), error

    def _fast_path_clear(self, parsed: ParsedInput) -> bool:
        """True when every bounded numeric value is within its bounds (NaN compares false: it passes)."""
        arrays = parsed.arrays
        columns = [arrays.get(name) for name in self._ranged]
        if any(c is None or c.dtype.kind != "f" for c in columns):
            return False
        block = np.column_stack(columns)
        return not ((block < self._lows) | (block > self._highs)).any()
