"""Monitoring: is the world the champion serves still the world it learned? And what to do when it is not.

One monitoring run looks at one *window* of the inference log (``read_window``) against the *reference*: a
seeded sample of the champion's training rows with the champion's predictions on them, computed once when the
version is trained and stored with it (``REFERENCE_ARTIFACT``). ``analyze_window`` measures

- data drift of every feature, with Evidently's stat tests column by column (:mod:`mlops.drift`);
- prediction drift (the served predictions against the champion's predictions on its training rows);
- data quality: the pipeline's expectations on the live inputs (Great Expectations, as for a batch);
- live performance where feedback labels have arrived: the champion re-scores the labelled rows and its
  primary metric is compared with the one it reached on its holdout.

``decide`` turns a window's analysis and the earlier windows into ``ok``, ``warn``, ``retrain`` or
``no_data``, with reasons, under the pipeline's retraining policy (windows in a row, cooldown, labels needed,
cap per day). ``retrain_batch`` writes the labelled live rows the policy selects as a training batch. The
Airflow DAG (``<name>_monitoring``) and ``mlops simulate`` are thin shells over these functions.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from mlops import settings, storage
from mlops.config import LOWER_IS_BETTER, PROBABILITY_METRICS
from mlops.drift import PREDICTION, ColumnDrift, DriftResult, compute_drift, drift_tests, prediction_kind
from mlops.errors import MlopsError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig, RetrainPolicy

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "monitoring/reference.parquet"
LABEL = "label"
Status = Literal["ok", "warn", "retrain", "no_data"]
#: Tags of a monitoring run in the MLflow experiment ``<pipeline>-monitoring`` (the policy's memory).
TAG_DECISION = "mlops.monitoring.decision"
TAG_REASONS = "mlops.monitoring.reasons"
TAG_DRIFTED = "mlops.monitoring.drifted"
TAG_START = "mlops.monitoring.window_start"
TAG_END = "mlops.monitoring.window_end"
TAG_VERSION = "mlops.model_version"
TAG_DATA_URI = "mlops.monitoring.retrain_data_uri"


class MonitoringError(MlopsError):
    """Monitoring cannot run: the reference is missing, the log cannot be read, nothing is in production."""

    code = "MONITORING_ERROR"


def monitoring_experiment(pipeline: str) -> str:
    return f"{pipeline}-monitoring"


# The reference --------------------------------------------------------------------------------------------
def build_reference(config: PipelineConfig, model: Any, train: pd.DataFrame) -> pd.DataFrame:
    """A seeded sample (at most ``monitoring.reference_rows``) of the training rows: features, target and the
    model's prediction on each row. Called once per version, when it is trained."""
    rows = config.monitoring.reference_rows
    sample = train.sample(n=rows, random_state=config.split.seed) if len(train) > rows else train
    frame = sample[[*config.feature_names, config.target]].reset_index(drop=True)
    frame[PREDICTION] = model.predict(frame[config.feature_names])
    return frame


def load_reference(config: PipelineConfig, version: int) -> pd.DataFrame:
    """The reference profile stored with a model version.

    Raises:
        MonitoringError: the version, its run or its reference artifact cannot be found or read.
    """
    import tempfile

    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from mlops import registry

    try:
        run_id = registry.get_version(config.name, version).run_id
        mlflow.set_tracking_uri(settings.tracking_uri())
        with tempfile.TemporaryDirectory(prefix="mlops-reference-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp
            )
            return pd.read_parquet(local)
    except (MlflowException, OSError, ValueError) as exc:
        raise MonitoringError(
            f"pipeline '{config.name}': no reference for model version {version} ({REFERENCE_ARTIFACT} of its "
            f"training run cannot be read: {type(exc).__name__}: {str(exc)[:300]}). Versions trained before "
            "monitoring existed have none: retrain to create it."
        ) from exc


def holdout_metrics(config: PipelineConfig, version: int) -> dict[str, float]:
    """The metrics a version reached on its holdout when it was trained."""
    from mlops import registry

    run = registry.client().get_run(registry.get_version(config.name, version).run_id)
    return {key: float(value) for key, value in run.data.metrics.items()}


# The window -----------------------------------------------------------------------------------------------
def read_window(config: PipelineConfig, start: datetime, end: datetime) -> pd.DataFrame:
    """The predictions served in ``[start, end)`` with their features as columns, ``prediction``, and
    ``label`` / ``feedback_time`` where feedback arrived (at any time up to now: labels come late).

    Raises:
        MonitoringError: a part of the log cannot be read (the file is named).
    """
    from mlops.serving.inference_log import (
        inference_log_uri,
        join_feedback,
        read_feedback,
        read_inference_log,
    )

    uri = inference_log_uri(config.name, config.serving.inference_log.uri)
    try:
        predictions = read_inference_log(uri, config.name, start.date(), end.date())
        feedback = read_feedback(uri, config.name, start.date(), None)
    except MlopsError as exc:
        raise MonitoringError(f"pipeline '{config.name}': the inference log cannot be read: {exc}") from exc
    in_window = predictions[(predictions["time"] >= start) & (predictions["time"] < end)]
    frame = join_feedback(in_window, feedback).rename(
        columns={f"input.{name}": name for name in config.feature_names}
    )
    for name in config.feature_names:
        if name not in frame.columns:
            frame[name] = float("nan") if name in config.numeric_features else None
    return frame.reset_index(drop=True)


def as_inputs(config: PipelineConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Feature columns with the training dtypes (numeric as float, categorical as text; nulls kept)."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for feature in config.features:
        column = frame[feature.name]
        if feature.type == "numeric":
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif column.dtype.kind == "O" or str(column.dtype) in ("category", "string"):
            out[feature.name] = column
        else:
            out[feature.name] = column.map(lambda v: None if pd.isna(v) else str(v))
    return out


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
        return found

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
    from mlops.training import compute_metrics

    metric = config.gate.primary_metric
    frame = as_inputs(config, labelled)
    frame[config.target] = _labels(config, labelled[LABEL])
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


def _labels(config: PipelineConfig, labels: pd.Series) -> pd.Series:
    import pandas as pd

    if config.task == "regression":
        return pd.to_numeric(labels, errors="coerce")
    numeric = pd.to_numeric(labels, errors="coerce")
    return numeric.astype("int64") if numeric.notna().all() else labels


def data_quality(config: PipelineConfig, inputs: pd.DataFrame) -> dict[str, Any]:
    """The pipeline's expectations on the live inputs (the target and the row count do not apply)."""
    from mlops.config import RowCount
    from mlops.validation import validate_frame

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
    return {"success": report.success, "summary": report.summary, "failures": failures[:20]}


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
    analysis.drift = compute_drift(
        reference, inputs, kinds, tests, share_threshold=config.monitoring.drift.share
    )
    analysis.timings["drift"] = time.perf_counter() - began
    began = time.perf_counter()
    if PREDICTION in window.columns and PREDICTION in reference.columns:
        served = window[PREDICTION]
        if prediction_kind(config) == "numeric":
            import pandas as pd

            served = pd.to_numeric(served, errors="coerce")
        analysis.prediction = compute_drift(
            reference, window.assign(**{PREDICTION: served}), {PREDICTION: prediction_kind(config)}, tests
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


# The decision ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowRecord:
    """What the policy remembers of an earlier window."""

    start: datetime
    end: datetime
    decision: Status
    drifted: bool
    model_version: int | None = None


@dataclass
class Decision:
    status: Status
    reasons: list[str]
    retrain_start: datetime | None = None
    retrain_end: datetime | None = None
    retrain_data: str | None = None
    new_labels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("retrain_start", "retrain_end"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out


def decide(
    analysis: WindowAnalysis,
    history: Sequence[WindowRecord],
    policy: RetrainPolicy,
    count_labels: Callable[[datetime, datetime], int],
) -> Decision:
    """``ok``, ``warn``, ``retrain`` or ``no_data`` for a window, given the earlier windows (newest first).

    A window that drifts (dataset drift, prediction drift or a performance drop) becomes ``retrain`` only when
    ``policy.consecutive_windows`` windows in a row drifted against the same champion, the last retraining is
    older than the cooldown, fewer than ``max_per_day`` retrainings happened that UTC day, and at least
    ``min_new_labels`` labelled live rows exist in the data the policy would train on (``count_labels(start,
    end)`` counts them). Anything short of that is ``warn``, saying what is missing.
    """
    findings = analysis.reasons()
    if analysis.status == "no_data":
        return Decision("no_data", findings)
    if not analysis.drifted:
        return Decision("warn" if analysis.concerns else "ok", findings or ["no drift, quality as expected"])
    if not policy.enabled:
        return Decision("warn", [*findings, "retraining is disabled (monitoring.retrain.enabled)"])
    streak_start, streak = analysis.start, 1
    retrains = []
    counting = True
    for record in sorted(history, key=lambda r: r.end, reverse=True):
        if record.end > analysis.end:
            continue
        if record.decision == "retrain":
            retrains.append(record.end)
            counting = False
        if not counting or record.decision == "no_data":
            continue
        if record.drifted and record.model_version == analysis.model_version:
            streak += 1
            streak_start = record.start
        else:
            counting = False
    if streak < policy.consecutive_windows:
        return Decision(
            "warn",
            [
                *findings,
                f"drifted window {streak} of the {policy.consecutive_windows} in a row needed to retrain",
            ],
        )
    if retrains and analysis.end - max(retrains) < timedelta(hours=policy.cooldown_hours):
        until = max(retrains) + timedelta(hours=policy.cooldown_hours)
        return Decision(
            "warn", [*findings, f"retraining cooldown until {until.isoformat(timespec='minutes')}"]
        )
    today = [when for when in retrains if when.date() == analysis.end.date()]
    if len(today) >= policy.max_per_day:
        return Decision(
            "warn", [*findings, f"{len(today)} retrainings today already (max_per_day {policy.max_per_day})"]
        )
    if policy.data == "sliding":
        start = analysis.end - timedelta(days=policy.sliding_days)
    else:  # recent, and the live part of 'all'
        start = streak_start
    labels = count_labels(start, analysis.end)
    if labels < policy.min_new_labels:
        return Decision(
            "warn",
            [*findings, f"{labels} labelled live rows to retrain on, {policy.min_new_labels} needed"],
            new_labels=labels,
        )
    return Decision(
        "retrain",
        [
            *findings,
            f"{streak} drifted windows in a row: retrain on {policy.data} data ({labels} labelled rows)",
        ],
        retrain_start=start,
        retrain_end=analysis.end,
        retrain_data=policy.data,
        new_labels=labels,
    )


def retrain_batch(
    config: PipelineConfig,
    start: datetime,
    end: datetime,
    stamp: str | None = None,
    *,
    reader: Callable[[datetime, datetime], pd.DataFrame] | None = None,
) -> str:
    """Write the labelled live rows of ``[start, end)`` as a training batch; return its URI.

    Args:
        reader: reads a range of the log (default :func:`read_window`); pass the one :func:`decide` counted
            the labels with, so the range is read once.

    Raises:
        MonitoringError: there is no labelled row in that range.
    """
    import io

    window = (reader or (lambda s, e: read_window(config, s, e)))(start, end)
    labelled = window[window[LABEL].notna()] if LABEL in window.columns else window.iloc[0:0]
    if labelled.empty:
        raise MonitoringError(
            f"pipeline '{config.name}': no labelled live row between {start.isoformat()} and {end.isoformat()}"
        )
    batch = as_inputs(config, labelled)
    batch[config.target] = _labels(config, labelled[LABEL]).to_numpy()
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    # In the format the pipeline's batches declare (a CSV pipeline reads CSV), Parquet when it is 'auto'.
    suffix = "csv" if config.data.format == "csv" else "parquet"
    uri = storage.join(settings.store_uri(), config.name, "retrain", f"live-{stamp}.{suffix}")
    buffer = io.BytesIO()
    if suffix == "csv":
        batch.to_csv(buffer, index=False)
    else:
        batch.to_parquet(buffer, index=False)
    storage.write_bytes(uri, buffer.getvalue())
    log.info("Retraining batch of %s: %d labelled live rows -> %s", config.name, len(batch), uri)
    return uri


def window_reader(
    config: PipelineConfig, known: dict[tuple[datetime, datetime], pd.DataFrame] | None = None
) -> Callable[[datetime, datetime], pd.DataFrame]:
    """:func:`read_window` that reads each range once (``known``: ranges already read)."""
    cache = dict(known or {})

    def read(start: datetime, end: datetime) -> pd.DataFrame:
        if (start, end) not in cache:
            cache[(start, end)] = read_window(config, start, end)
        return cache[(start, end)]

    return read


def count_labels(
    config: PipelineConfig, reader: Callable[[datetime, datetime], pd.DataFrame] | None = None
) -> Callable[[datetime, datetime], int]:
    """A ``count_labels`` for :func:`decide` that reads the inference log (through ``reader`` if given)."""
    read = reader or window_reader(config)

    def count(start: datetime, end: datetime) -> int:
        window = read(start, end)
        return int(window[LABEL].notna().sum()) if LABEL in window.columns else 0

    return count


# Reports --------------------------------------------------------------------------------------------------
def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=rows, random_state=seed) if len(frame) > rows else frame


def write_report(
    config: PipelineConfig,
    window: pd.DataFrame,
    reference: pd.DataFrame,
    analysis: WindowAnalysis,
    path: str,
) -> None:
    """Evidently's HTML report of the window: drift of every feature and of the prediction (with the configured
    tests) and a data summary, drawn from a seeded sample of ``monitoring.report_rows`` rows per side.

    The decisions are the full window's (``summary.json``); the report shows the distributions behind them.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    tests = drift_tests(config)
    columns = [*config.feature_names, PREDICTION]
    numeric = [*config.numeric_features] + ([PREDICTION] if config.task == "regression" else [])
    categorical = [*config.categorical_features] + ([PREDICTION] if config.task != "regression" else [])
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    seed = config.split.seed
    current = as_inputs(config, _sample(window, config.monitoring.report_rows, seed))
    current[PREDICTION] = _sample(window, config.monitoring.report_rows, seed)[PREDICTION].to_numpy()
    if config.task == "regression":
        import pandas as pd

        current[PREDICTION] = pd.to_numeric(current[PREDICTION], errors="coerce")
    ref = _sample(reference, config.monitoring.report_rows, seed)[columns]
    if config.task != "regression":
        current[PREDICTION] = current[PREDICTION].astype(str)
        ref = ref.assign(**{PREDICTION: ref[PREDICTION].astype(str)})
    per_method = {}
    per_threshold = {}
    for name in columns:
        column = (
            analysis.prediction
            if name == PREDICTION
            else (analysis.drift.columns.get(name) if analysis.drift else None)
        )
        test = tests[name]
        per_method[name] = column.method if column else test.method
        per_threshold[name] = column.threshold if column else test.threshold
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                per_column_method=per_method,
                per_column_threshold=per_threshold,
                drift_share=config.monitoring.drift.share,
            ),
            DataSummaryPreset(columns=columns),
        ],
        include_tests=True,
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    snapshot.save_html(path)


def summary_json(analysis: WindowAnalysis, decision: Decision) -> str:
    return json.dumps({**analysis.to_dict(), "decision": decision.to_dict()}, indent=2, default=str)


# Memory and records (MLflow experiment ``<pipeline>-monitoring``) -------------------------------------------
def load_history(config: PipelineConfig, limit: int = 500) -> list[WindowRecord]:
    """Earlier windows' decisions, newest first (a window monitored twice counts once: its latest run)."""
    import mlflow

    from mlops.training import ensure_experiment

    mlflow.set_tracking_uri(settings.tracking_uri())
    experiment_id = ensure_experiment(monitoring_experiment(config.name))
    runs = mlflow.MlflowClient().search_runs(
        [experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
    )
    records: dict[tuple[str, str], WindowRecord] = {}
    for run in runs:
        tags = run.data.tags
        if TAG_DECISION not in tags or TAG_END not in tags:
            continue
        key = (tags.get(TAG_START, ""), tags[TAG_END])
        if key in records:
            continue
        version = tags.get(TAG_VERSION)
        records[key] = WindowRecord(
            start=datetime.fromisoformat(tags.get(TAG_START) or tags[TAG_END]),
            end=datetime.fromisoformat(tags[TAG_END]),
            decision=tags[TAG_DECISION],  # type: ignore[arg-type]
            drifted=tags.get(TAG_DRIFTED) == "true",
            model_version=int(version) if version and version.isdigit() else None,
        )
    return sorted(records.values(), key=lambda r: r.end, reverse=True)


@dataclass
class MonitoringRun:
    """Where a window's records went."""

    run_id: str
    experiment_id: str
    report_uri: str | None
    summary_uri: str
    url: str
    report_error: str | None = None


def record_window(
    config: PipelineConfig,
    analysis: WindowAnalysis,
    decision: Decision,
    *,
    window: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
    extra_tags: dict[str, str] | None = None,
    report: bool = True,
) -> MonitoringRun:
    """Log one MLflow run for the window: decision and reasons as tags, per-feature drift scores as metrics
    (the MLflow UI charts them run over run), ``summary.json`` and Evidently's ``report.html`` as artifacts."""
    import tempfile
    from pathlib import Path

    import mlflow

    from mlops.training import ensure_experiment

    mlflow.set_tracking_uri(settings.tracking_uri())
    experiment_id = ensure_experiment(monitoring_experiment(config.name))
    tags = {
        "mlops.pipeline": config.name,
        TAG_DECISION: decision.status,
        TAG_REASONS: " | ".join(decision.reasons)[:4900],
        TAG_DRIFTED: str(analysis.drifted).lower(),
        TAG_START: analysis.start.isoformat(),
        TAG_END: analysis.end.isoformat(),
        TAG_VERSION: str(analysis.model_version or ""),
        **(extra_tags or {}),
    }
    metrics: dict[str, float] = {"rows": analysis.rows, "labelled_rows": analysis.labelled_rows}
    if analysis.drift is not None:
        metrics["drift.share"] = analysis.drift.share
        for name, column in analysis.drift.columns.items():
            metrics[f"drift.{name}"] = column.score
            metrics[f"effect.{name}"] = column.effect_size
    if analysis.prediction is not None:
        metrics["drift.prediction"] = analysis.prediction.score
    if analysis.performance and analysis.performance.get("live") is not None:
        metrics[f"live.{analysis.performance['metric']}"] = analysis.performance["live"]
    run_name = f"{analysis.start:%Y-%m-%dT%H:%M}..{analysis.end:%Y-%m-%dT%H:%M}"
    report_error = None
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(v)})
        mlflow.log_text(summary_json(analysis, decision), "summary.json")
        report_uri = None
        if report and analysis.status == "analyzed" and window is not None and reference is not None:
            with tempfile.TemporaryDirectory(prefix="mlops-report-") as tmp:
                path = Path(tmp) / "report.html"
                try:
                    write_report(config, window, reference, analysis, str(path))
                except Exception as exc:  # the decision stands without its pictures
                    report_error = f"{type(exc).__name__}: {str(exc)[:500]}"
                    log.exception("%s: the Evidently report could not be drawn", config.name)
                    mlflow.set_tag("mlops.monitoring.report_error", report_error)
                else:
                    mlflow.log_artifact(str(path))
                    report_uri = f"{run.info.artifact_uri}/report.html"
    url = f"{settings.mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run.info.run_id}"
    return MonitoringRun(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        report_uri=report_uri,
        summary_uri=f"{run.info.artifact_uri}/summary.json",
        url=url,
        report_error=report_error,
    )


def load_champion_model(config: PipelineConfig, version: int) -> Any:
    """The scikit-learn model of a version (to re-score labelled live rows)."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri())
    return mlflow.sklearn.load_model(f"models:/{config.name}/{version}")


@dataclass
class WindowOutcome:
    analysis: WindowAnalysis
    decision: Decision
    run: MonitoringRun
    retrain_data_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.decision.status,
            "reasons": self.decision.reasons,
            "drifted": self.analysis.drifted,
            "rows": self.analysis.rows,
            "labelled_rows": self.analysis.labelled_rows,
            "model_version": self.analysis.model_version,
            "window_start": self.analysis.start.isoformat(),
            "window_end": self.analysis.end.isoformat(),
            "top_features": [c.explain() for c in self.analysis.top_features()],
            "retrain_data_uri": self.retrain_data_uri,
            "retrain_data": self.decision.retrain_data,
            "mlflow_run_id": self.run.run_id,
            "mlflow_experiment_id": self.run.experiment_id,
            "mlflow_url": self.run.url,
            "report_uri": self.run.report_uri,
        }


def monitor_window(
    config: PipelineConfig, start: datetime, end: datetime, *, report: bool = True
) -> WindowOutcome:
    """One monitoring run, start to finish: read, analyze, decide, write the retraining batch, record.

    Raises:
        MonitoringError: no reference for the champion, or an unreadable inference log.
    """
    from mlops import registry

    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise MonitoringError(
            f"pipeline '{config.name}': a window needs timezone-aware start < end; got {start} .. {end}"
        )
    champion = registry.alias_version(config.name, registry.CHAMPION)
    window = read_window(config, start, end)
    if champion is None:
        analysis = WindowAnalysis(config.name, start, end, None, len(window), status="no_data")
        decision = Decision("no_data", ["no champion in production yet: nothing to monitor"])
        run = record_window(config, analysis, decision, report=False)
        return WindowOutcome(analysis, decision, run)
    reference = load_reference(config, champion)
    model = holdout = None
    if LABEL in window.columns and window[LABEL].notna().sum() >= config.monitoring.performance.min_labels:
        model = load_champion_model(config, champion)
        holdout = holdout_metrics(config, champion)
    analysis = analyze_window(
        config, window, reference, start=start, end=end, model_version=champion, model=model, holdout=holdout
    )
    reader = window_reader(config, {(start, end): window})
    decision = decide(analysis, load_history(config), config.monitoring.retrain, count_labels(config, reader))
    data_uri = None
    extra = {}
    if decision.status == "retrain":
        assert decision.retrain_start is not None and decision.retrain_end is not None
        data_uri = retrain_batch(config, decision.retrain_start, decision.retrain_end, reader=reader)
        extra[TAG_DATA_URI] = data_uri
    run = record_window(
        config, analysis, decision, window=window, reference=reference, extra_tags=extra, report=report
    )
    log.info(
        "%s window %s..%s: %s (%s)", config.name, start, end, decision.status, "; ".join(decision.reasons)
    )
    return WindowOutcome(analysis, decision, run, data_uri)


def retrain_reason(outcome: WindowOutcome) -> str:
    """The reason carried into the training run and onto the new version."""
    top = ", ".join(c.column for c in outcome.analysis.top_features(3)) or "prediction/performance"
    return (
        f"drift: {outcome.analysis.start:%Y-%m-%d %H:%M}..{outcome.analysis.end:%Y-%m-%d %H:%M} "
        f"(top: {top}); monitoring run {outcome.run.run_id}"
    )
