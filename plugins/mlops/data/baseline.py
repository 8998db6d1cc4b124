"""The recorded baseline: default protection for a pipeline that declares no expectations.

A pipeline whose config has no rules under ``expectations.columns`` still gets checks on the *values* of its
batches, as TFX does with an inferred schema: its first accepted batch is profiled and the profile is stored
next to the pipeline's batches; every later batch is checked against it, with ``expectations.baseline``
(``warn``, the default, ``fail`` or ``off``) deciding what a broken check does. The profile:

- per numeric column (numeric features, a regression target): the smallest and largest value seen, and the
  range checked, widened by :data:`MARGIN` of the observed span on each side;
- per categorical column (categorical features, a classification target): the values seen, categorical
  features in their canonical text (:func:`mlops.core.categories.canonical_category`); a column with too many
  distinct values to be a category (:data:`MAX_CATEGORIES`, or an identifier: nearly one value per row) is
  recorded as skipped;
- the share of nulls of every declared column (a nullable feature may later hold at most
  :func:`allowed_null_fraction` of it);
- the row count (recorded, not checked: batch sizes vary; ``expectations.row_count.min`` is the floor).

A range or set check tolerates :data:`TOLERANCE` of a column's non-null values outside what the baseline saw
(one odd row is not an anomaly; a unit change, a shifted column or a new code on many rows is). The checks
are Great Expectations expectations with ``meta.source = "baseline"`` and GX's ``severity`` (``warning`` in
warn mode, ``critical`` in fail mode), so the validation report lists them like any other rule.

Where it lives: ``<store>/<pipeline>/baseline/baseline.json``. ``mlops baseline reset <pipeline>`` retires it
to ``<store>/<pipeline>/baseline/retired/`` (nothing is deleted), and the next accepted batch is recorded anew;
so does a change of the config's features, target or task (the baseline keeps their fingerprint).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.config import PipelineConfig, features_fingerprint, settings
from mlops.data import storage
from mlops.data.canonical import canonical_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MARGIN",
    "MAX_CATEGORIES",
    "TOLERANCE",
    "Baseline",
    "active_baseline",
    "allowed_null_fraction",
    "applies",
    "baseline_expectations",
    "baseline_uri",
    "config_fingerprint",
    "load_baseline",
    "profile_frame",
    "record_baseline",
    "reset_baseline",
    "widened_range",
]

log = logging.getLogger(__name__)

#: Share of a numeric column's observed span added below its minimum and above its maximum.
MARGIN = 0.25
#: Share of a column's non-null values that may fall outside the baseline's range or set of values.
TOLERANCE = 0.01
#: A categorical column with more distinct values than this gets no set of values in the baseline.
MAX_CATEGORIES = 1000
#: Version of the stored profile's layout.
FORMAT = 1


@dataclass(frozen=True)
class Baseline:
    """The profile of a pipeline's first accepted batch (JSON-able; see the module docstring).

    Attributes:
        pipeline: Pipeline name.
        fingerprint: Features, target and task of the config it was recorded with.
        recorded_at: When (UTC, ISO 8601).
        batch: Content hash of the batch it was recorded from.
        source: Where that batch came from.
        rows: Its row count.
        numeric: Per numeric column: ``seen_min``, ``seen_max`` and the checked ``min``/``max``.
        categorical: Per categorical column: the values seen (canonical text for features).
        null_fraction: Per declared column: the share of null values.
        skipped: Columns without a value check, with the reason.
        margin: :data:`MARGIN` when recorded. tolerance: :data:`TOLERANCE` when recorded.
    """

    pipeline: str
    fingerprint: str
    recorded_at: str
    batch: str
    source: str
    rows: int
    numeric: dict[str, dict[str, float]] = field(default_factory=dict)
    categorical: dict[str, list[Any]] = field(default_factory=dict)
    null_fraction: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    margin: float = MARGIN
    tolerance: float = TOLERANCE
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Baseline:
        return cls(**json.loads(text))


def config_fingerprint(config: PipelineConfig) -> str:
    """What a baseline depends on: the features (names and types), the target and the task."""
    return f"{features_fingerprint(config)}:{config.target}:{config.task}"


def applies(config: PipelineConfig) -> bool:
    """Whether the pipeline is protected by a baseline: no ``expectations.columns`` rules, mode not ``off``."""
    return config.expectations.baseline != "off" and not config.expectations.columns


# Storage ----------------------------------------------------------------------------------------------------
def baseline_uri(pipeline: str) -> str:
    """``<store>/<pipeline>/baseline/baseline.json``."""
    return storage.join(settings.store_uri(), pipeline, "baseline", "baseline.json")


def load_baseline(pipeline: str) -> Baseline | None:
    """The pipeline's recorded baseline, or None (also for an unreadable file, with a warning in the log)."""
    uri = baseline_uri(pipeline)
    if not storage.exists(uri):
        return None
    try:
        return Baseline.from_json(storage.read_text(uri))
    except (ValueError, TypeError) as exc:  # not JSON, or not a baseline of this format
        log.warning("%s is not a readable baseline (%s); the next accepted batch replaces it", uri, exc)
        return None


def active_baseline(config: PipelineConfig) -> Baseline | None:
    """The baseline later batches are checked against: None when the pipeline has none, does not use one,
    or its features, target or task changed since it was recorded (the next accepted batch replaces it)."""
    if not applies(config):
        return None
    baseline = load_baseline(config.name)
    if baseline is None:
        return None
    if baseline.fingerprint != config_fingerprint(config):
        log.warning(
            "The baseline of %s was recorded for other features, target or task; the next accepted batch "
            "replaces it.",
            config.name,
        )
        return None
    return baseline


def reset_baseline(pipeline: str) -> str | None:
    """Retire the pipeline's baseline (moved to ``baseline/retired/``); returns where it went, or None."""
    uri = baseline_uri(pipeline)
    if not storage.exists(uri):
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    retired = storage.join(settings.store_uri(), pipeline, "baseline", "retired", f"{stamp}.json")
    storage.move(uri, retired)
    return retired


def record_baseline(config: PipelineConfig, frame: pd.DataFrame, *, batch: str, source: str) -> Baseline:
    """Profile an accepted batch and store it as the pipeline's baseline (a stale one is retired first)."""
    if storage.exists(baseline_uri(config.name)):
        reset_baseline(config.name)
    baseline = profile_frame(frame, config, batch=batch, source=source)
    storage.write_text(baseline_uri(config.name), baseline.to_json())
    log.info(
        "Recorded the baseline of %s from batch %s (%d rows): later batches are checked against it (%s mode).",
        config.name,
        batch[:12],
        baseline.rows,
        config.expectations.baseline,
    )
    return baseline


# The profile ------------------------------------------------------------------------------------------------
def widened_range(low: float, high: float, margin: float = MARGIN) -> tuple[float, float]:
    """``[low, high]`` widened by ``margin`` of its span on each side; a single value by ``margin`` of its
    size (at least 1). A range of values that are all >= 0 does not widen below 0."""
    span = high - low
    pad = margin * span if span > 0 else max(abs(low) * margin, 1.0)
    lower = low - pad
    if low >= 0 > lower:
        lower = 0.0
    return lower, high + pad


def allowed_null_fraction(seen: float) -> float:
    """The share of nulls a nullable column may have later: what the baseline saw, plus as much again (at
    least 5 points), at most 1."""
    return min(1.0, seen + max(seen, 0.05))


def _columns(config: PipelineConfig) -> list[tuple[str, bool, bool, bool]]:
    """(name, numeric, nullable, is_feature) of every declared column, the target last."""
    columns = [(f.name, f.type == "numeric", f.nullable, True) for f in config.features]
    columns.append((config.target, config.task == "regression", False, False))
    return columns


def _python(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) and type(value).__module__ == "numpy" else value


def profile_frame(frame: pd.DataFrame, config: PipelineConfig, *, batch: str, source: str) -> Baseline:
    """The baseline profile of one batch (its declared columns, in their canonical dtypes).

    Args:
        frame: The batch, as read for validation.
        config: Its pipeline's config.
        batch: The batch's content hash.
        source: Where the batch came from.
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    frame = canonical_frame(frame, config)
    rows = len(frame)
    numeric: dict[str, dict[str, float]] = {}
    categorical: dict[str, list[Any]] = {}
    nulls: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name, is_numeric, _, _ in _columns(config):
        if name not in frame.columns:
            continue
        column = frame[name]
        present = column.dropna()
        nulls[name] = round(float(column.isna().mean()), 6) if rows else 0.0
        if present.empty:
            skipped[name] = "no values in the baseline batch"
        elif is_numeric:
            if is_bool_dtype(column.dtype) or not is_numeric_dtype(column.dtype):
                skipped[name] = f"not numeric in the baseline batch (dtype {column.dtype})"
                continue
            seen_min, seen_max = float(present.min()), float(present.max())
            if not (math.isfinite(seen_min) and math.isfinite(seen_max)):
                skipped[name] = "infinite values in the baseline batch"
                continue
            low, high = widened_range(seen_min, seen_max)
            numeric[name] = {"seen_min": seen_min, "seen_max": seen_max, "min": low, "max": high}
        else:
            values = present.unique()
            distinct = len(values)
            if distinct > MAX_CATEGORIES or (distinct > 50 and distinct > 0.5 * len(present)):
                skipped[name] = f"{distinct} distinct values in {len(present)} rows: too many to list"
                continue
            categorical[name] = sorted((_python(v) for v in values), key=lambda v: (str(type(v)), v))
    return Baseline(
        pipeline=config.name,
        fingerprint=config_fingerprint(config),
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        batch=batch,
        source=source,
        rows=rows,
        numeric=numeric,
        categorical=categorical,
        null_fraction=nulls,
        skipped=skipped,
    )


# The checks -------------------------------------------------------------------------------------------------
def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _values(values: list[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")


def baseline_expectations(baseline: Baseline, config: PipelineConfig) -> list[Any]:
    """The Great Expectations checks of a batch against a recorded baseline.

    One range check per numeric column, one set check per categorical column, one share-of-nulls check per
    nullable feature (non-nullable columns already refuse every null). Each carries
    ``meta = {"rule": ..., "source": "baseline"}`` and GX's ``severity``: ``warning`` with
    ``expectations.baseline: warn``, ``critical`` with ``fail``. Columns the config no longer declares are
    left out.

    Args:
        baseline: The pipeline's recorded baseline.
        config: Its config (the mode and the declared columns).

    Returns:
        Expectation objects, to add to the suite of :func:`mlops.data.validation.build_suite`.
    """
    import great_expectations.expectations as gxe

    severity = "warning" if config.expectations.baseline == "warn" else "critical"
    mostly = round(1.0 - baseline.tolerance, 12)
    share = f"{baseline.tolerance:.0%}"
    recorded = f"baseline of batch {baseline.batch[:12]}"
    found: list[Any] = []

    def add(cls: type, rule: str, **kwargs: Any) -> None:
        found.append(
            cls(**kwargs, description=rule, meta={"rule": rule, "source": "baseline"}, severity=severity)
        )

    for name, _, nullable, is_feature in _columns(config):
        if name in baseline.numeric:
            bounds = baseline.numeric[name]
            add(
                gxe.ExpectColumnValuesToBeBetween,
                f"{name} must be between {_number(bounds['min'])} and {_number(bounds['max'])} in all but "
                f"{share} of rows ({recorded}: seen {_number(bounds['seen_min'])} to "
                f"{_number(bounds['seen_max'])}, widened by {baseline.margin:.0%} of that span)",
                column=name,
                min_value=bounds["min"],
                max_value=bounds["max"],
                mostly=mostly,
            )
        if name in baseline.categorical:
            values = baseline.categorical[name]
            add(
                gxe.ExpectColumnValuesToBeInSet,
                f"{name} must be one of the values seen in the {recorded} ({_values(values)}) in all but "
                f"{share} of rows",
                column=name,
                value_set=values,
                mostly=mostly,
            )
        if is_feature and nullable and name in baseline.null_fraction:
            allowed = allowed_null_fraction(baseline.null_fraction[name])
            if allowed < 1.0:
                add(
                    gxe.ExpectColumnValuesToNotBeNull,
                    f"{name} may be null in at most {allowed:.0%} of rows ({recorded}: "
                    f"{baseline.null_fraction[name]:.0%} null)",
                    column=name,
                    mostly=round(1.0 - allowed, 12),
                )
    return found
