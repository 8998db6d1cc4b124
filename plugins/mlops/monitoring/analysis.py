"""What one window shows: feature and prediction drift, data quality on live inputs, live performance."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mlops.config import LOWER_IS_BETTER, PROBABILITY_METRICS
from mlops.ml.drift import PREDICTION, ColumnDrift, DriftResult, compute_drift, drift_tests, prediction_kind
from mlops.monitoring.window import LABEL, as_inputs, labels_as_target

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)

#: A reason is one readable sentence: at most this many characters (longer ones end with "...").
REASON_LIMIT = 600
#: Failed live-input rules named in the data-quality reason; the others are counted ("and 4 more").
QUALITY_ITEMS = 3
_ITEM_LIMIT = 120


# Analysis -------------------------------------------------------------------------------------------------
@dataclass
class WindowAnalysis:
    """What one window shows. ``status`` is ``no_data`` when there are fewer rows than ``min_rows``."""

    pipeline: str
    start: datetime
    end: datetime
    model_version: int | None
    rows: int
    labelled_rows: int = 0
    status: Literal["analyzed", "no_data"] = "analyzed"
    drift: DriftResult | None = None
    prediction: ColumnDrift | None = None
    quality: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    reference_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def performance_dropped(self) -> bool:
        return bool(self.performance and self.performance.get("degraded"))

    @property
    def drifted(self) -> bool:
        """The window counts towards retraining: dataset drift, prediction drift or a performance drop."""
        return bool(
            (self.drift and self.drift.dataset_drift)
            or (self.prediction and self.prediction.drifted)
            or self.performance_dropped
        )

    @property
    def concerns(self) -> bool:
        """Something a person should see: the window drifted, or live inputs break the expectations.

        A few drifted features below ``drift.share`` are not a concern on their own (they are listed in the
        reasons): on small windows, sampling noise alone moves some of many features past a distance
        threshold, and a warning that fires every day is a warning nobody reads."""
        return self.drifted or bool(self.quality and not self.quality["success"])

    def top_features(self, limit: int = 5) -> list[ColumnDrift]:
        if self.drift is None:
            return []
        return [self.drift.columns[name] for name in self.drift.drifted_columns[:limit]]

    def reasons(self) -> list[str]:
        """Readable findings, the most important first."""
        if self.status == "no_data":
            return [f"{self.rows} predictions in the window (fewer than monitoring.min_rows)"]
        found = []
        if self.performance_dropped:
            p = self.performance or {}
            found.append(
                f"live {p['metric']} {p['live']:.4g} on {p['labelled_rows']} labelled rows vs "
                f"{p['holdout']:.4g} on the holdout (worse by {abs(p['change']):.4g} > {p['max_drop']:g})"
            )
        if self.drift is not None and self.drift.drifted_columns:
            verb = "dataset drift" if self.drift.dataset_drift else "drift in some features"
            found.append(
                f"{verb}: {len(self.drift.drifted_columns)} of {len(self.drift.columns)} features drifted "
                f"(share {self.drift.share:.0%}, threshold {self.drift.share_threshold:.0%}): "
                + "; ".join(column.explain() for column in self.top_features())
            )
        if self.prediction is not None and self.prediction.drifted:
            found.append(f"prediction drift: {self.prediction.explain()}")
        if self.quality is not None and not self.quality["success"]:
            found.append(f"data quality: {self.quality['summary']}")
        return [clip(reason, REASON_LIMIT) for reason in found]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "model_version": self.model_version,
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "reference_rows": self.reference_rows,
            "status": self.status,
            "drifted": self.drifted,
            "reasons": self.reasons(),
            "drift": self.drift.to_dict() if self.drift else None,
            "prediction_drift": self.prediction.to_dict() if self.prediction else None,
            "quality": self.quality,
            "performance": self.performance,
            "timings_seconds": self.timings,
        }


def live_performance(
    config: PipelineConfig, model: Any, labelled: pd.DataFrame, holdout: dict[str, float]
) -> dict[str, Any]:
    """The champion's primary metric on the labelled live rows, against its holdout value."""
    from mlops.ml.training import compute_metrics

    metric = config.gate.primary_metric
    frame = as_inputs(config, labelled)
    frame[config.target] = labels_as_target(config, labelled[LABEL])
    live = compute_metrics(config, model, frame)
    value, before = live.get(metric), holdout.get(metric)
    result: dict[str, Any] = {
        "metric": metric,
        "live": value,
        "holdout": before,
        "labelled_rows": len(labelled),
        "max_drop": config.monitoring.performance.max_drop,
        "metrics": live,
        "degraded": False,
        "change": None,
    }
    if value is not None and before is not None and not math.isnan(value):
        change = value - before
        worse = change > 0 if metric in LOWER_IS_BETTER else change < 0
        result["change"] = change
        result["degraded"] = bool(worse and abs(change) > config.monitoring.performance.max_drop)
    return result


def data_quality(config: PipelineConfig, inputs: pd.DataFrame) -> dict[str, Any]:
    """The pipeline's expectations on the live inputs (the target and the row count do not apply)."""
    from mlops.config import RowCount
    from mlops.data.validation import validate_frame

    live_config = config.model_copy(
        update={
            "expectations": config.expectations.model_copy(
                update={
                    "row_count": RowCount(min=1),
                    "columns": {
                        name: rule
                        for name, rule in config.expectations.columns.items()
                        if name != config.target
                    },
                }
            )
        }
    )
    frame = inputs.copy()
    frame[config.target] = 0  # present so that the suite's schema check passes; never checked
    report = validate_frame(frame, live_config)
    failures = [
        {"column": failure.column, "rule": failure.rule, "detail": failure.detail}
        for failure in report.failed
    ]
    return {
        "success": report.success,
        "summary": quality_summary(failures, len(inputs)),
        "failures": failures[:20],
    }


def quality_summary(failures: list[dict[str, Any]], rows: int, limit: int = QUALITY_ITEMS) -> str:
    """One short sentence on the live inputs' broken rules: the first ``limit`` by name, the rest counted.

    Example: ``"3 rules broken on 400 live rows: mean_radius: 400 rows outside [0, 60]; mean_area: 12 rows
    outside [0, 6000]; worst_area: 3 rows outside [0, 10000]"``, and ``"... and 4 more"`` past ``limit``.
    """
    if not failures:
        return f"every rule holds on {rows} live rows"
    named = [
        clip(f"{f['column']}: {f['detail']}" if f.get("column") else str(f["detail"]), _ITEM_LIMIT)
        for f in failures[:limit]
    ]
    more = f" and {len(failures) - limit} more" if len(failures) > limit else ""
    rules = "rule" if len(failures) == 1 else "rules"
    return f"{len(failures)} {rules} broken on {rows} live rows: " + "; ".join(named) + more


def clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (a longer one ends with "...")."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def analyze_window(
    config: PipelineConfig,
    window: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    start: datetime,
    end: datetime,
    model_version: int | None,
    model: Any = None,
    holdout: dict[str, float] | None = None,
    check_quality: bool = True,
) -> WindowAnalysis:
    """Drift, prediction drift, data quality and (with ``model`` and labels) live performance of a window."""
    import time

    analysis = WindowAnalysis(
        pipeline=config.name,
        start=start,
        end=end,
        model_version=model_version,
        rows=len(window),
        reference_rows=len(reference),
    )
    if len(window) < config.monitoring.min_rows:
        analysis.status = "no_data"
        return analysis
    tests = drift_tests(config)
    kinds = {f.name: f.type for f in config.features}
    began = time.perf_counter()
    inputs = as_inputs(config, window)
    noise = config.monitoring.drift.noise_sigmas  # distance thresholds at least the window's noise floor
    analysis.drift = compute_drift(
        reference, inputs, kinds, tests, share_threshold=config.monitoring.drift.share, noise_sigmas=noise
    )
    analysis.timings["drift"] = time.perf_counter() - began
    began = time.perf_counter()
    if PREDICTION in window.columns and PREDICTION in reference.columns:
        served = window[PREDICTION]
        if prediction_kind(config) == "numeric":
            import pandas as pd

            served = pd.to_numeric(served, errors="coerce")
        analysis.prediction = compute_drift(
            reference,
            window.assign(**{PREDICTION: served}),
            {PREDICTION: prediction_kind(config)},
            tests,
            noise_sigmas=noise,
        ).columns[PREDICTION]
    analysis.timings["prediction_drift"] = time.perf_counter() - began
    if check_quality:
        began = time.perf_counter()
        analysis.quality = data_quality(config, inputs)
        analysis.timings["quality"] = time.perf_counter() - began
    if LABEL in window.columns:
        labelled = window[window[LABEL].notna()]
        analysis.labelled_rows = len(labelled)
        needs_proba = config.gate.primary_metric in PROBABILITY_METRICS
        if (
            model is not None
            and holdout
            and len(labelled) >= config.monitoring.performance.min_labels
            and (not needs_proba or hasattr(model, "predict_proba"))
        ):
            began = time.perf_counter()
            analysis.performance = live_performance(config, model, labelled, holdout)
            analysis.timings["performance"] = time.perf_counter() - began
    return analysis
