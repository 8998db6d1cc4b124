"""What the Models page shows, read from the pipeline configs and the MLflow registry and tracking store.

Plain functions returning dataclasses that serialize to JSON; nothing here knows about HTTP. Reading is
read-only: a pipeline without a registered model or a monitoring experiment is shown as such, never created.

    >>> from mlops.ui.models import models_overview        # doctest: +SKIP
    >>> overview = models_overview()                       # doctest: +SKIP
    >>> overview.pipelines[0].champion.version             # doctest: +SKIP
    2
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlops.config import settings
from mlops.errors import MlopsError
from mlops.registry.tags import (
    TAG_DECISION,
    TAG_END,
    TAG_REASONS,
    TAG_START,
    TAG_VERSION,
    monitoring_experiment,
)

log = logging.getLogger(__name__)

SEMVER_TAG = "mlops.semver"
GATE_REPORT = "gate/verdict.md"
MONITORING_ARTIFACTS = ("report.html", "summary.json")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ReportNotFound(MlopsError):
    """A report asked for does not exist (unknown pipeline, version, run or artifact)."""

    code = "REPORT_NOT_FOUND"


@dataclass
class VersionSummary:
    """One registered model version, as the page lists it."""

    version: int
    semver: str | None
    status: str
    created_at: str
    run_id: str
    gate_verdict: str | None
    mlflow_url: str


@dataclass
class MetricPoint:
    """The gate's primary metric of one version (its ``gate.challenger.<metric>`` tag)."""

    version: int
    value: float
    champion: bool = False


@dataclass
class MetricHistory:
    """The pipeline's primary metric across its gated versions, oldest first (the card's chart)."""

    metric: str
    points: list[MetricPoint]
    ungated: int = 0


@dataclass
class GateSummary:
    """The last gate verdict of a pipeline (on whichever version was gated last)."""

    version: int
    semver: str | None
    verdict: str
    reasons: list[str]
    evaluated_at: str
    primary_metric: str
    challenger_value: str | None
    champion_version: int | None
    run_id: str
    mlflow_url: str
    report_available: bool = False


@dataclass
class MonitoringSummary:
    """The last monitoring window of a pipeline (the newest run of ``<pipeline>-monitoring``)."""

    decision: str
    reasons: list[str]
    window_start: str
    window_end: str
    model_version: int | None
    run_id: str
    experiment_id: str
    mlflow_url: str
    report_available: bool
    report_error: str | None = None
    summary_available: bool = False


@dataclass
class PipelineOverview:
    name: str
    task: str
    training_dag_id: str
    monitoring_dag_id: str
    #: None when MLflow has no such registered model (its page would be MLflow's "Page Not Found").
    registered_model_url: str | None = None
    champion: VersionSummary | None = None
    #: The newest version above the champion that never served: the candidate waiting for (or refused by) the
    #: gate or the deployment. None: "none pending".
    challenger: VersionSummary | None = None
    gate: GateSummary | None = None
    monitoring: MonitoringSummary | None = None
    history: MetricHistory | None = None
    versions: int = 0
    error: str | None = None


@dataclass
class ModelsOverview:
    pipelines: list[PipelineOverview]
    config_errors: dict[str, str] = field(default_factory=dict)
    mlflow_ui_url: str = ""
    generated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client() -> Any:
    from mlops import registry

    return registry.client()


def _split_reasons(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(" | ") if part.strip()]


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


#: MLflow 3's UI opens in its GenAI mode unless told otherwise (a switch it remembers per browser); this query
#: parameter opens our links in its machine-learning mode: runs table, charts, the model registry in the nav.
ML_VIEW = "workflowType=machine_learning"

#: Statuses of versions that served once (or were refused for good): never the pending candidate.
_NOT_PENDING = {"champion", "retired", "rolled_back"}


def registered_model_url(name: str) -> str:
    return f"{settings.mlflow_ui_url()}/#/models/{quote(name)}?{ML_VIEW}"


def model_version_url(name: str, version: int) -> str:
    return f"{settings.mlflow_ui_url()}/#/models/{quote(name)}/versions/{version}?{ML_VIEW}"


def run_url(experiment_id: str, run_id: str) -> str:
    return f"{settings.mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}"


def _status(tags: dict[str, str], names: list[str]) -> str:
    if "champion" in names:
        return "champion"
    if tags.get("deploy.status"):
        return tags["deploy.status"]
    if tags.get("gate.verdict") == "rejected":
        return "rejected"
    return "challenger" if "challenger" in names else "registered"


def _version_summary(model_version: Any, aliases: dict[int, list[str]]) -> VersionSummary:
    number = int(model_version.version)
    tags = model_version.tags or {}
    created = datetime.fromtimestamp(model_version.creation_timestamp / 1000, UTC)
    return VersionSummary(
        version=number,
        semver=tags.get(SEMVER_TAG),
        status=_status(tags, aliases.get(number, [])),
        created_at=created.isoformat(timespec="seconds"),
        run_id=model_version.run_id,
        gate_verdict=tags.get("gate.verdict"),
        mlflow_url=model_version_url(model_version.name, number),
    )


def pending_candidate(versions: list[Any], aliases: dict[int, list[str]], champion: int | None) -> Any | None:
    """The newest version above the champion that never served, or None ("none pending").

    The ``challenger`` alias cannot say it: registration points it at each new version and promotion leaves it
    there, so after a promotion it names the champion. A candidate refused by the gate or the deployment is
    still shown (with its verdict) until a newer one is registered; a version that served once is not.
    """
    candidates = [
        v
        for v in versions
        if (champion is None or int(v.version) > champion)
        and _status(v.tags or {}, aliases.get(int(v.version), [])) not in _NOT_PENDING
    ]
    return max(candidates, key=lambda v: int(v.version), default=None)


def metric_history(versions: list[Any], metric: str, champion: int | None) -> MetricHistory:
    """The primary metric the gate recorded for each version, oldest first; versions never gated are counted.

    The values are the versions' own tags (``gate.challenger.<metric>``, each on the holdout of its training
    run), so the chart costs no call beyond the one search of the versions.
    """
    points, ungated = [], 0
    for model_version in sorted(versions, key=lambda v: int(v.version)):
        text = (model_version.tags or {}).get(f"gate.challenger.{metric}")
        try:
            value = float(text) if text is not None else None
        except ValueError:
            value = None
        if value is None or not math.isfinite(value):
            ungated += 1
            continue
        number = int(model_version.version)
        points.append(MetricPoint(version=number, value=value, champion=number == champion))
    return MetricHistory(metric=metric, points=points, ungated=ungated)


def _has_artifact(client: Any, run_id: str, path: str) -> bool:
    folder, _, name = path.rpartition("/")
    return name in {Path(a.path).name for a in client.list_artifacts(run_id, folder or None)}


def _last_gate(client: Any, versions: list[Any]) -> GateSummary | None:
    gated = [v for v in versions if (v.tags or {}).get("gate.verdict")]
    if not gated:
        return None
    last = max(gated, key=lambda v: (v.tags.get("gate.evaluated_at", ""), int(v.version)))
    tags = last.tags
    primary = tags.get("gate.primary_metric", "")
    return GateSummary(
        version=int(last.version),
        semver=tags.get(SEMVER_TAG),
        verdict=tags["gate.verdict"],
        reasons=_split_reasons(tags.get("gate.reasons")),
        evaluated_at=tags.get("gate.evaluated_at", ""),
        primary_metric=primary,
        challenger_value=tags.get(f"gate.challenger.{primary}"),
        champion_version=_int_or_none(tags.get("gate.champion_version")),
        run_id=last.run_id,
        mlflow_url=model_version_url(last.name, int(last.version)),
        report_available=bool(last.run_id) and _has_artifact(client, last.run_id, GATE_REPORT),
    )


def _last_monitoring(client: Any, pipeline: str) -> MonitoringSummary | None:
    experiment = client.get_experiment_by_name(monitoring_experiment(pipeline))
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=20
    )
    for run in runs:
        tags = run.data.tags
        if TAG_DECISION not in tags:
            continue
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        return MonitoringSummary(
            decision=tags[TAG_DECISION],
            reasons=_split_reasons(tags.get(TAG_REASONS)),
            window_start=tags.get(TAG_START, ""),
            window_end=tags.get(TAG_END, ""),
            model_version=_int_or_none(tags.get(TAG_VERSION)),
            run_id=run.info.run_id,
            experiment_id=experiment.experiment_id,
            mlflow_url=run_url(experiment.experiment_id, run.info.run_id),
            report_available="report.html" in artifacts,
            report_error=tags.get("mlops.monitoring.report_error"),
            summary_available="summary.json" in artifacts,
        )
    return None


def _registered_model(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return None
        raise


def pipeline_overview(config: Any, client: Any | None = None) -> PipelineOverview:
    """Champion, pending challenger, metric history, last gate verdict and last monitoring of one pipeline.

    MLflow calls: one search of the versions, the registered model (aliases), one artifact listing of the last
    gated run, and the monitoring experiment's newest runs. An MLflow failure is reported in ``error`` rather
    than raised, so that one pipeline cannot break the page.
    """
    from mlflow.exceptions import MlflowException

    from mlops import registry

    client = client or _client()
    overview = PipelineOverview(
        name=config.name,
        task=config.task,
        training_dag_id=config.training_dag_id,
        monitoring_dag_id=config.monitoring_dag_id,
    )
    try:
        model = _registered_model(client, config.name)
        if model is not None:
            overview.registered_model_url = registered_model_url(config.name)
            versions = client.search_model_versions(f"name='{config.name}'")
            overview.versions = len(versions)
            aliases: dict[int, list[str]] = {}
            for alias, number in (model.aliases or {}).items():
                aliases.setdefault(int(number), []).append(alias)
            by_number = {int(v.version): v for v in versions}
            champion = next((n for n, names in aliases.items() if registry.CHAMPION in names), None)
            if champion is not None and champion in by_number:
                overview.champion = _version_summary(by_number[champion], aliases)
            candidate = pending_candidate(versions, aliases, champion)
            if candidate is not None:
                overview.challenger = _version_summary(candidate, aliases)
            if versions:
                overview.history = metric_history(versions, config.gate.primary_metric, champion)
            overview.gate = _last_gate(client, versions)
        overview.monitoring = _last_monitoring(client, config.name)
    except (MlflowException, OSError) as exc:
        log.exception("Models page: cannot read pipeline '%s' from MLflow", config.name)
        overview.error = f"cannot read MLflow ({settings.tracking_uri()}): {type(exc).__name__}: {exc}"
    return overview


def load_configs(pipelines_dir: str | Path | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The valid pipeline configs by name, and a one-line error per broken file."""
    from mlops.config import load_all

    configs, errors = load_all(pipelines_dir or settings.pipelines_dir())
    return configs, {path: str(error).splitlines()[0] for path, error in errors.items()}


def models_overview(pipelines_dir: str | Path | None = None) -> ModelsOverview:
    """Every pipeline of the configs, sorted by name, with what MLflow knows about it."""
    configs, errors = load_configs(pipelines_dir)
    client = _client() if configs else None
    return ModelsOverview(
        pipelines=[pipeline_overview(configs[name], client) for name in sorted(configs)],
        config_errors=errors,
        mlflow_ui_url=settings.mlflow_ui_url(),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _known_pipeline(pipeline: str, pipelines_dir: str | Path | None) -> None:
    configs, _ = load_configs(pipelines_dir)
    if pipeline not in configs:
        # The answer names what is missing, never a server path: the folder goes to the log only.
        log.info(
            "report of unknown pipeline %r asked for (configs in %s)",
            pipeline,
            pipelines_dir or settings.pipelines_dir(),
        )
        raise ReportNotFound(f"no pipeline '{pipeline}'")


def gate_report(
    pipeline: str, version: int, dest_dir: str | Path, pipelines_dir: str | Path | None = None
) -> Path:
    """Download the gate's ``gate/verdict.md`` of a version into ``dest_dir`` and return its path.

    Raises:
        ReportNotFound: unknown pipeline or version, or the version was never gated.
    """
    from mlflow.exceptions import MlflowException

    _known_pipeline(pipeline, pipelines_dir)
    client = _client()
    try:
        model_version = client.get_model_version(pipeline, str(version))
        return Path(client.download_artifacts(model_version.run_id, GATE_REPORT, str(dest_dir)))
    except (MlflowException, OSError) as exc:
        # MLflow's message holds artifact URIs and the download folder: logged, not answered.
        log.info("gate report of '%s' v%s not served: %s", pipeline, version, exc)
        raise ReportNotFound(f"'{pipeline}' v{version} has no gate report ({GATE_REPORT})") from exc


def monitoring_artifact(
    pipeline: str,
    run_id: str,
    artifact: str,
    dest_dir: str | Path,
    pipelines_dir: str | Path | None = None,
) -> Path:
    """Download one artifact (``report.html`` or ``summary.json``) of a monitoring run of ``pipeline``.

    Only runs of the pipeline's own monitoring experiment are served, so the endpoint cannot be used to read
    any other run's artifacts.

    Raises:
        ReportNotFound: unknown pipeline, run or artifact, or a run of another experiment.
    """
    from mlflow.exceptions import MlflowException

    if artifact not in MONITORING_ARTIFACTS or not _RUN_ID.match(run_id):
        raise ReportNotFound(
            f"no monitoring artifact '{artifact}' of run '{run_id}' (one of {', '.join(MONITORING_ARTIFACTS)})"
        )
    _known_pipeline(pipeline, pipelines_dir)
    client = _client()
    try:
        experiment = client.get_experiment_by_name(monitoring_experiment(pipeline))
        run = client.get_run(run_id)
        if experiment is None or run.info.experiment_id != experiment.experiment_id:
            raise ReportNotFound(f"run {run_id} is not a monitoring run of '{pipeline}'")
        return Path(client.download_artifacts(run_id, artifact, str(dest_dir)))
    except (MlflowException, OSError) as exc:
        log.info("%s of monitoring run %s of '%s' not served: %s", artifact, run_id, pipeline, exc)
        raise ReportNotFound(f"monitoring run {run_id} of '{pipeline}' has no {artifact}") from exc
