"""Airflow operators: thin shells over the core.

Each ``execute()`` reads its arguments, calls one core function and returns something small and JSON-able.
Nothing here is expensive at construction time (operators are built at every DAG parse); the core modules,
and with them pandas, scikit-learn, MLflow and Great Expectations, are imported inside ``execute()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops.config import PipelineConfig

#: Task ids of the training DAG (the gate branches to one of the last two; to APPROVE first where required).
APPROVE = "approve"
INGEST, VALIDATE, TRAIN, REGISTER, GATE, DEPLOY, REJECTED = (
    "ingest",
    "validate",
    "train",
    "register",
    "gate",
    "deploy",
    "gate_rejected",
)


#: Task ids of the monitoring DAG.
ANALYZE, ACT, REQUEST_RETRAINING, DONE = "analyze", "act", "request_retraining", "done"
#: Keys a retraining request (an Asset event's extra, or a run's conf) may carry into a training run.
TRIGGER_KEYS = ("data_uri", "reason", "training_window", "trigger", "monitoring_run_id")


def retrain_asset(pipeline: str) -> Any:
    """The Asset whose events (from ``<pipeline>_monitoring``) schedule ``<pipeline>_training``."""
    from airflow.sdk import Asset

    # A name without a URI scheme: a scheme would make Airflow load every provider's URI handlers (boto3...)
    # at each DAG parse.
    return Asset(name=f"{pipeline}_retrain", group="mlops")


def run_params(context: Context) -> dict[str, Any]:
    """The run's params, overridden by the extra of the newest triggering Asset event (a retraining request):
    a run that the scheduler starts on an Asset event has default params and the request in the event."""
    params = dict(context.get("params") or {})
    events = context.get("triggering_asset_events") or {}
    newest = None
    try:
        for asset_events in events.values():
            for event in asset_events:
                when = getattr(event, "timestamp", None)
                if newest is None or (when is not None and when >= getattr(newest, "timestamp", when)):
                    newest = event
    except (AttributeError, TypeError):
        newest = None
    extra = dict(getattr(newest, "extra", None) or {}) if newest is not None else {}
    params.update({key: extra[key] for key in TRIGGER_KEYS if extra.get(key) not in (None, "")})
    return params


def _run_info(context: Context) -> dict[str, str]:
    ti = context["ti"]
    params = run_params(context)
    info = {
        "airflow.dag_id": ti.dag_id,
        "airflow.run_id": ti.run_id,
        "airflow.try_number": str(ti.try_number),
    }
    if params.get("reason"):
        info["mlops.trigger_reason"] = str(params["reason"])
    if params.get("trigger"):
        info["mlops.trigger"] = str(params["trigger"])
    if params.get("monitoring_run_id"):
        info["mlops.monitoring_run_id"] = str(params["monitoring_run_id"])
    return info


def _actor(context: Context) -> str:
    dag_run = context.get("dag_run")
    triggered_by = getattr(dag_run, "triggering_user_name", None) if dag_run is not None else None
    return f"airflow:{triggered_by}" if triggered_by else f"airflow:{context['ti'].dag_id}"


class _PipelineOperator(BaseOperator):
    ui_color = "#e8f1fb"

    def __init__(self, *, config: PipelineConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config


class IngestBatchOperator(_PipelineOperator):
    """Copy the batch at ``data_uri`` into the data store under its content hash."""

    template_fields = ("data_uri",)

    def __init__(self, *, data_uri: str = "{{ params.data_uri }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_uri = data_uri

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.batches import ingest_batch

        when = context.get("logical_date") or context["dag_run"].run_after
        requested = run_params(context).get("data_uri") if context.get("triggering_asset_events") else None
        return ingest_batch(self.config, requested or self.data_uri or None, when).to_dict()


class ValidateBatchOperator(_PipelineOperator):
    """Validate the batch with Great Expectations; quarantine it and fail (without retries) if it is bad."""

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.batches import Batch, validate_and_file
        from mlops.errors import DataValidationError

        batch = Batch.from_dict(context["ti"].xcom_pull(task_ids=INGEST))
        try:
            outcome = validate_and_file(self.config, batch)
        except DataValidationError as exc:
            # Bad data stays bad: retrying would only delay the alert.
            raise AirflowFailException(str(exc)) from exc
        self.log.info("%s", outcome.summary)
        return outcome.to_dict()


class TrainModelOperator(_PipelineOperator):
    """Train on the pipeline's snapshot and track the run in MLflow (params ``model`` override the recipe)."""

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.batches import Batch
        from mlops.training import train_model

        ti = context["ti"]
        batch = Batch.from_dict(ti.xcom_pull(task_ids=VALIDATE)["batch"])
        params = run_params(context)
        config = self.config
        if params.get("training_window") in ("all", "latest"):
            config = config.model_copy(
                update={"training": config.training.model_copy(update={"window": params["training_window"]})}
            )
        result = train_model(
            config, batch, lineage=_run_info(context), model_override=params.get("model") or None
        )
        ti.xcom_push(key="mlflow_run_id", value=result.run_id)
        ti.xcom_push(key="mlflow_experiment_id", value=result.experiment_id)
        return {"run_id": result.run_id, "model_uri": result.model_uri, "metrics": result.metrics}


class RegisterModelOperator(_PipelineOperator):
    """Register the trained model as a new version named after the pipeline, alias ``challenger``."""

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.registry import register_version

        trained = context["ti"].xcom_pull(task_ids=TRAIN)
        tags = {**_run_info(context), "mlops.run_id": trained["run_id"]}
        version = register_version(
            self.config.name, trained["model_uri"], trained["run_id"], tags, self.config.description
        )
        return {"version": version, "run_id": trained["run_id"]}


class EvaluateGateOperator(BaseBranchOperator):
    """Score challenger and champion on one holdout; branch to ``deploy`` or ``gate_rejected``."""

    ui_color = "#fdf3d7"

    def __init__(self, *, config: PipelineConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    def choose_branch(self, context: Context) -> str:
        from mlops.gate import run_gate

        registered = context["ti"].xcom_pull(task_ids=REGISTER)
        verdict = run_gate(self.config, registered["version"])
        context["ti"].xcom_push(key="verdict", value=verdict.to_dict())
        from mlops.cards import refresh_cards

        refresh_cards(self.config.name, [verdict.challenger_version])  # rejected versions get a card too
        self.log.info("Gate %s: %s", verdict.status.upper(), "; ".join(verdict.reasons))
        if not verdict.passed:
            return REJECTED
        return APPROVE if self.config.deploy.approval.required else DEPLOY


class DeployModelOperator(_PipelineOperator):
    """Smoke test, canary or shadow phase where configured, then compare-and-set promotion to ``champion``."""

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.alerts import send_event
        from mlops.deploy import DeploymentRejected, deploy_challenger
        from mlops.errors import PromotionConflict

        verdict = context["ti"].xcom_pull(task_ids=GATE, key="verdict")
        version = verdict["challenger_version"]
        reason = run_params(context).get("reason") or "passed the gate"
        try:
            entry = deploy_challenger(
                self.config,
                version,
                verdict["champion_version"],
                actor=_actor(context),
                reason=reason,
                evidence={
                    "run_id": context["ti"].run_id,
                    "gate": verdict["reasons"],
                    **(
                        {"approval": context["ti"].xcom_pull(task_ids=APPROVE)}
                        if self.config.deploy.approval.required
                        else {}
                    ),
                },
            )
        except (DeploymentRejected, PromotionConflict) as exc:
            # The champion serves on; retrying would not change the verdict.
            raise AirflowFailException(str(exc)) from exc
        from mlops.cards import refresh_cards

        refresh_cards(self.config.name, [version, entry.get("from_version")])
        send_event(
            self.config.name,
            self.config.alerts,
            "promoted",
            f"v{version} is the new champion",
            "; ".join(verdict["reasons"]),
            context,
        )
        return entry


class RollbackOperator(_PipelineOperator):
    """Point ``champion`` back at an earlier version (the one it replaced, or ``params.to_version``)."""

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.alerts import send_event
        from mlops.deploy import rollback

        params = context.get("params") or {}
        to_version = params.get("to_version")
        reason = params.get("reason") or "rollback from Airflow"
        from mlops.errors import RegistryError

        try:
            entry = rollback(
                self.config,
                to_version=int(to_version) if to_version else None,
                actor=_actor(context),
                reason=reason,
            )
        except RegistryError as exc:  # nothing to roll back to: retrying will not change that
            raise AirflowFailException(str(exc)) from exc
        from mlops.cards import refresh_cards

        refresh_cards(self.config.name, [entry["to_version"], entry.get("from_version")])
        send_event(
            self.config.name,
            self.config.alerts,
            "promoted",
            f"rolled back to v{entry['to_version']}",
            f"champion v{entry['from_version']} -> v{entry['to_version']}: {reason}",
            context,
        )
        return entry


class GateRejectedOperator(_PipelineOperator):
    """The gate said no: keep the champion, log the reasons and send a warning alert."""

    ui_color = "#f8d7da"

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.alerts import send_event

        verdict = context["ti"].xcom_pull(task_ids=GATE, key="verdict")
        champion = f"v{verdict['champion_version']}" if verdict["champion_version"] else "none"
        summary = "; ".join(verdict["reasons"])
        self.log.warning(
            "Gate REJECTED %s v%s (champion stays %s): %s",
            self.config.name,
            verdict["challenger_version"],
            champion,
            summary,
        )
        drift = run_params(context).get("trigger") == "drift"
        title = f"challenger v{verdict['challenger_version']} rejected by the gate"
        if drift:
            title = f"drift persists, retrained model rejected (v{verdict['challenger_version']})"
            summary = f"{summary}. The champion {champion} keeps serving data that has drifted."
        send_event(
            self.config.name,
            self.config.alerts,
            "rejected",
            title,
            summary,
            context,
            details={"champion": champion, "challenger_metrics": verdict["challenger_metrics"]},
        )
        return {
            "status": "rejected",
            "challenger_version": verdict["challenger_version"],
            "reasons": verdict["reasons"],
            "drift_persists": drift,
        }


# The monitoring DAG ---------------------------------------------------------------------------------------
def _window(context: Context) -> tuple[Any, Any]:
    """The window: the form's ``start``/``end`` if given, else the run's data interval, else the last day."""
    from datetime import UTC, datetime, timedelta

    params = context.get("params") or {}

    def parse(value: Any) -> datetime | None:
        if not value:
            return None
        when = (
            value
            if isinstance(value, datetime)
            else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        )
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    start, end = parse(params.get("start")), parse(params.get("end"))
    if start is None and end is None:
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        start = start if start is None or isinstance(start, datetime) else parse(str(start))
        end = end if end is None or isinstance(end, datetime) else parse(str(end))
        if start is None or end is None or end <= start:
            end = datetime.now(UTC)
            start = end - timedelta(days=1)
    elif end is None:
        end = datetime.now(UTC)
    elif start is None:
        start = end - timedelta(days=1)
    return start, end


class MonitorWindowOperator(_PipelineOperator):
    """Read the window of the inference log, measure drift, quality and live performance against the
    champion's reference, decide (ok, warn, retrain, no_data) and record it all in MLflow."""

    ui_color = "#e6f4ea"

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.monitoring import MonitoringError, monitor_window

        start, end = _window(context)
        try:
            outcome = monitor_window(self.config, start, end)
        except MonitoringError as exc:
            # No reference, unreadable log: a person has to look; retrying would not change it.
            raise AirflowFailException(str(exc)) from exc
        ti = context["ti"]
        ti.xcom_push(key="mlflow_run_id", value=outcome.run.run_id)
        ti.xcom_push(key="mlflow_experiment_id", value=outcome.run.experiment_id)
        result = outcome.to_dict()
        if outcome.decision.status == "retrain":
            from mlops.monitoring import retrain_reason

            result["reason"] = retrain_reason(outcome)
        self.log.info(
            "Window %s..%s: %s\n%s",
            start,
            end,
            outcome.decision.status.upper(),
            "\n".join(outcome.decision.reasons),
        )
        return result


class MonitorDecisionOperator(BaseBranchOperator):
    """Alert on ``warn`` and ``retrain`` (top drifted features, link to the report); branch to the request."""

    ui_color = "#fdf3d7"

    def __init__(self, *, config: PipelineConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    def choose_branch(self, context: Context) -> str:
        from mlops.alerts import send_event

        outcome = context["ti"].xcom_pull(task_ids=ANALYZE)
        status = outcome["status"]
        if status in ("warn", "retrain"):
            title = "drift detected: retraining requested" if status == "retrain" else "monitoring warning"
            send_event(
                self.config.name,
                self.config.alerts,
                "drift",
                f"{title} (model v{outcome['model_version']})",
                "\n".join(outcome["reasons"]),
                context,
                details={
                    "window": f"{outcome['window_start']} .. {outcome['window_end']}",
                    "top drifted features": "; ".join(outcome["top_features"]) or "none",
                    "report": outcome["report_uri"] or "not drawn (see the MLflow run)",
                },
            )
        return REQUEST_RETRAINING if status == "retrain" else DONE


class RequestRetrainingOperator(_PipelineOperator):
    """Emit the Asset event that schedules ``<pipeline>_training`` on the data the policy selected."""

    ui_color = "#fde2e1"

    def execute(self, context: Context) -> dict[str, Any]:
        outcome = context["ti"].xcom_pull(task_ids=ANALYZE)
        request = {
            "data_uri": outcome["retrain_data_uri"],
            "reason": outcome["reason"],
            "training_window": "all" if outcome["retrain_data"] == "all" else "latest",
            "trigger": "drift",
            "monitoring_run_id": outcome["mlflow_run_id"],
        }
        context["outlet_events"][retrain_asset(self.config.name)].extra = request
        self.log.info("Retraining of %s requested: %s", self.config.name, request)
        return request
