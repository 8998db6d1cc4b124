"""Monitoring's MLflow records: the experiment ``<pipeline>-monitoring`` (the policy's memory), and the
reference, holdout metrics and model of a version that a monitoring run reads.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops.config import settings
from mlops.core.policy import Decision, WindowRecord
from mlops.errors import MonitoringError
from mlops.ml import tracking
from mlops.ml.reference import REFERENCE_ARTIFACT
from mlops.monitoring.analysis import WindowAnalysis
from mlops.monitoring.report import summary_json, write_report
from mlops.registry.tags import (
    TAG_DECISION,
    TAG_DRIFTED,
    TAG_END,
    TAG_REASONS,
    TAG_START,
    TAG_VERSION,
    monitoring_experiment,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)


def load_reference(config: PipelineConfig, version: int) -> pd.DataFrame:
    """The reference profile stored with a model version.

    Raises:
        MonitoringError: the version, its run or its reference artifact cannot be found or read.
    """
    import tempfile

    import pandas as pd
    from mlflow.exceptions import MlflowException

    from mlops import registry

    try:
        run_id = registry.get_version(config.name, version).run_id
        mlflow = tracking.mlflow()
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


# Memory and records (MLflow experiment ``<pipeline>-monitoring``) -------------------------------------------
def load_history(config: PipelineConfig, limit: int = 500) -> list[WindowRecord]:
    """Earlier windows' decisions, newest first (a window monitored twice counts once: its latest run)."""

    from mlops.ml.training import ensure_experiment

    experiment_id = ensure_experiment(monitoring_experiment(config.name))
    runs = tracking.client().search_runs(
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

    from mlops.ml.training import ensure_experiment

    mlflow = tracking.mlflow()
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
    """The scikit-learn model of a version (to re-score labelled live rows), verified against its digest.

    Raises:
        ModelIntegrityError: the version's files do not match the digest recorded at registration.
    """
    from mlops.registry import load_verified_model

    return load_verified_model(config.name, version)
