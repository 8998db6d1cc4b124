"""Monitoring: is the world the champion serves still the world it learned? And what to do when it is not.

One monitoring run looks at one *window* of the inference log (``read_window``) against the *reference*: a
seeded sample of the champion's training rows with the champion's predictions on them, computed once when the
version is trained and stored with it (``REFERENCE_ARTIFACT``). ``analyze_window`` measures

- data drift of every feature, with Evidently's stat tests column by column (:mod:`mlops.ml.drift`);
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

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops.core.policy import Decision, decide
from mlops.errors import MonitoringError
from mlops.monitoring.analysis import WindowAnalysis, analyze_window
from mlops.monitoring.store import (
    MonitoringRun,
    holdout_metrics,
    load_champion_model,
    load_history,
    load_reference,
    record_window,
)
from mlops.monitoring.window import LABEL, count_labels, read_window, retrain_batch, window_reader
from mlops.registry.tags import TAG_DATA_URI

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)


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
