"""Airflow operators: thin shells over the services.

Each ``execute()`` reads its inputs (templated fields, most of them XComArgs of the task upstream, so the
data edges are the graph's edges), calls one service, sends the event's alert where there is one, and
returns something small and JSON-able. Nothing here is expensive at construction time (operators are built at
every DAG parse); the services, and with them pandas, scikit-learn, MLflow and Great Expectations, are
imported inside ``execute()``.

Errors that cannot change fail their task without retries, in one place (:class:`FailFast`): a permanent
kit error (:func:`mlops.errors.is_permanent`: a config, the data, its schema, an estimator's parameters, a
refused deployment, a window that cannot be monitored) becomes ``AirflowFailException``; every other error,
and a permanent one caused by the network, S3 or the MLflow server, keeps the task's retries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseBranchOperator, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops.airflow.task_ids import (
    APPROVE,
    DEPLOY,
    DONE,
    MLFLOW_EXPERIMENT_KEY,
    MLFLOW_RUN_KEY,
    REJECTED,
    REQUEST_KEY,
    REQUEST_RETRAINING,
    TRIGGER_KEYS,
    VERDICT_KEY,
)
from mlops.errors import RegistryError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops.config import AlertEvent, PipelineConfig


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


def retraining_request(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """The retraining request (the Asset event's extra, a training run's params) of a ``retrain`` outcome."""
    return {
        "data_uri": outcome["retrain_data_uri"],
        "reason": outcome["reason"],
        "training_window": "all" if outcome["retrain_data"] == "all" else "latest",
        "trigger": "drift",
        "monitoring_run_id": outcome["mlflow_run_id"],
    }


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


#: The methods through which Airflow runs an operator's work: ``FailFast`` guards each one a class defines.
_ENTRY_POINTS = ("execute", "execute_complete", "choose_branch")


def _failing_fast(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: FailFast, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except AirflowFailException:
            raise
        except Exception as exc:
            if not self.is_permanent(exc):
                raise  # transient or unknown: the task's retries apply
            self.log.error(  # type: ignore[attr-defined]
                "%s is permanent (the same inputs fail the same way): failing without retries",
                type(exc).__name__,
            )
            raise AirflowFailException(str(exc)) from exc

    guarded.__fail_fast__ = True  # type: ignore[attr-defined]
    return guarded


class FailFast:
    """Fail the task at once on a permanent error, keep the retries for the rest: every ``execute``,
    ``execute_complete`` and ``choose_branch`` of a subclass runs guarded. The failure callbacks (the failure
    alert) run as for any failed task, once.

    ``also_permanent``: error types that are permanent for one operator only (the rollback's "nothing to roll
    back to" is a ``RegistryError``, which elsewhere can be an unreachable server)."""

    also_permanent: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _ENTRY_POINTS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__fail_fast__", False):
                setattr(cls, name, _failing_fast(method))

    def is_permanent(self, error: BaseException) -> bool:
        from mlops.errors import is_permanent

        return is_permanent(error, self.also_permanent)


class _Alerting(FailFast):
    """The pipeline's event alerts (``promoted``, ``rejected``, ``drift``): Airflow notifier delivery, so the
    shell's business; failures are alerted by the tasks' ``on_failure_callback`` instead."""

    config: PipelineConfig

    def _alert(
        self,
        context: Context,
        event: AlertEvent,
        title: str,
        summary: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        from mlops.airflow.alerts import send_event

        send_event(self.config.name, self.config.alerts, event, title, summary, context, details=details)


class _PipelineOperator(_Alerting, BaseOperator):
    ui_color = "#e8f1fb"

    def __init__(self, *, config: PipelineConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config


# The training DAG -----------------------------------------------------------------------------------------
class IngestBatchOperator(_PipelineOperator):
    """Copy the batch at ``data_uri`` into the data store under its content hash."""

    template_fields = ("data_uri",)

    def __init__(self, *, data_uri: str = "{{ params.data_uri }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_uri = data_uri

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.data.batches import ingest_batch

        when = context.get("logical_date") or context["dag_run"].run_after
        requested = run_params(context).get("data_uri") if context.get("triggering_asset_events") else None
        return ingest_batch(self.config, requested or self.data_uri or None, when).to_dict()


class ValidateBatchOperator(_PipelineOperator):
    """Validate the ingested ``batch`` with Great Expectations; quarantine it and fail (without retries) if it
    is bad. Its result's keys are XComs of their own too (``validate.output["batch"]`` is the accepted batch)."""

    template_fields = ("batch",)

    def __init__(self, *, batch: Any, **kwargs: Any) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.batch = batch

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.data.batches import Batch, validate_and_file

        # Bad data stays bad: a DataValidationError fails the task without retries (FailFast).
        outcome = validate_and_file(self.config, Batch.from_dict(self.batch))
        self.log.info("%s", outcome.summary)
        warnings = outcome.batch.warnings
        if warnings:
            shown = "; ".join(warnings[:5]) + (f"; and {len(warnings) - 5} more" if len(warnings) > 5 else "")
            self._alert(
                context,
                "data_warning",
                f"batch {outcome.batch.source} passed with {len(warnings)} warning(s)",
                f"{shown}. It trains on; the report: {outcome.report_uri}.",
            )
        return outcome.to_dict()


class TrainModelOperator(_PipelineOperator):
    """Train on the snapshot ending with the accepted ``batch``, tracked in MLflow (params ``model``,
    ``training_window``); skipped, naming the version (XCom ``same_inputs``; a drift request alerts), when a
    version has the same inputs (:mod:`mlops.services.training`), unless param ``force``."""

    template_fields = ("batch",)
    SAME_INPUTS_KEY: ClassVar[str] = "same_inputs"

    def __init__(self, *, batch: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops.data.batches import Batch
        from mlops.ml.training import FINGERPRINT_TAG, VALIDATION_WARNINGS_TAG
        from mlops.services.training import SameInputs, train_if_new

        params = run_params(context)
        outcome = train_if_new(
            self.config,
            Batch.from_dict(self.batch),
            lineage=_run_info(context),
            model_override=params.get("model") or None,
            training_window=params.get("training_window"),
            force=str(params.get("force")).lower() == "true",
            trigger=params.get("trigger"),
        )
        ti = context["ti"]
        if isinstance(outcome, SameInputs):
            ti.xcom_push(key=self.SAME_INPUTS_KEY, value=outcome.to_dict())
            if outcome.trigger == "drift":  # monitoring announced a retraining: say that none happened
                which = f"v{outcome.version}" if outcome.version is not None else f"run {outcome.run_id}"
                title = f"retraining skipped: same inputs as {which}"
                self._alert(context, "drift", title, outcome.message)
            raise AirflowSkipException(outcome.message)
        ti.xcom_push(key=MLFLOW_RUN_KEY, value=outcome.run_id)  # the failure alerts link to the run
        ti.xcom_push(key=MLFLOW_EXPERIMENT_KEY, value=outcome.experiment_id)
        trained = {"run_id": outcome.run_id, "model_uri": outcome.model_uri, "metrics": outcome.metrics}
        for tag in (FINGERPRINT_TAG, VALIDATION_WARNINGS_TAG):  # the version carries them too (register)
            if outcome.tags.get(tag):
                trained[tag] = outcome.tags[tag]
        return trained


class RegisterModelOperator(_PipelineOperator):
    """Register the ``trained`` model as a new version named after the pipeline, alias ``challenger``."""

    template_fields = ("trained",)

    def __init__(self, *, trained: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trained = trained

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.ml.training import VALIDATION_WARNINGS_TAG
        from mlops.registry import register_version

        run_id = self.trained["run_id"]
        tags = {**_run_info(context), "mlops.run_id": run_id}
        if self.trained.get(VALIDATION_WARNINGS_TAG):
            tags[VALIDATION_WARNINGS_TAG] = self.trained[VALIDATION_WARNINGS_TAG]
        version = register_version(
            self.config.name, self.trained["model_uri"], run_id, tags, self.config.description
        )
        return {"version": version, "run_id": run_id}


class EvaluateGateOperator(_Alerting, BaseBranchOperator):
    """Score the ``registered`` challenger and the champion on one holdout; branch to ``deploy`` (or
    ``approve``) or ``gate_rejected``.

    The verdict goes to XCom key ``verdict``: a branch's return value never reaches XCom (skipping the other
    branch ends ``execute()`` with an exception), so ``XComArg(gate, key="verdict")`` is how tasks read it.
    """

    ui_color = "#fdf3d7"
    template_fields = ("registered",)

    def __init__(self, *, config: PipelineConfig, registered: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.registered = registered

    def choose_branch(self, context: Context) -> str:
        from mlops.services.gate import gate_challenger

        verdict = gate_challenger(self.config, int(self.registered["version"]))
        context["ti"].xcom_push(key=VERDICT_KEY, value=verdict.to_dict())
        self.log.info("Gate %s: %s", verdict.status.upper(), "; ".join(verdict.reasons))
        if not verdict.passed:
            return REJECTED
        return APPROVE if self.config.deploy.approval.required else DEPLOY


class DeployModelOperator(_PipelineOperator):
    """Deploy the challenger of the gate's ``verdict``: smoke test, then compare-and-set promotion to
    ``champion``; where a canary (or shadow) phase is configured, the task defers to a
    :class:`~mlops.airflow.triggers.CanaryTrigger` while the phase runs and resumes to promote or roll back.

    Args:
        verdict: The gate's verdict (``XComArg(gate, key="verdict")``, or the approval's where one is needed).
        approval: The approval's outcome where one is required (kept in the promotion's audit entry).
        poll_seconds: How often the trigger looks at the model server's canary statistics.
    """

    template_fields = ("verdict", "approval")

    def __init__(
        self, *, verdict: Any, approval: Any = None, poll_seconds: float = 2.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict
        self.approval = approval
        self.poll_seconds = poll_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.services.deploy import begin_deployment

        evidence: dict[str, Any] = {"run_id": context["ti"].run_id, "gate": self.verdict["reasons"]}
        if self.approval is not None:
            evidence["approval"] = self.approval
        # A refused deployment (smoke test, canary, compare-and-set) fails without retries (FailFast): the
        # champion serves on, and a retry would not change the verdict.
        rollout = begin_deployment(
            self.config,
            int(self.verdict["challenger_version"]),
            self.verdict["champion_version"],
            actor=_actor(context),
            reason=run_params(context).get("reason") or "passed the gate",
            evidence=evidence,
        )
        if rollout.canary is not None:
            from mlops.airflow.triggers import CanaryTrigger

            self.log.info(
                "v%s: %s phase started; waiting for its guard in the triggerer",
                rollout.canary.version,
                self.config.deploy.strategy,
            )
            self.defer(
                trigger=CanaryTrigger(rollout.canary.to_dict(), poll_seconds=self.poll_seconds),
                method_name="execute_complete",
            )
        assert rollout.entry is not None
        return self._promoted(context, rollout.entry)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the canary phase: judge what the trigger saw, then promote or roll back."""
        from mlops.services.deploy import CanaryPhase, complete_canary

        entry = complete_canary(self.config, CanaryPhase.from_dict(event["phase"]), event)
        return self._promoted(context, entry)

    def _promoted(self, context: Context, entry: dict[str, Any]) -> dict[str, Any]:
        self._alert(
            context,
            "promoted",
            f"v{entry['to_version']} is the new champion",
            "; ".join(self.verdict["reasons"]),
        )
        return entry


class RollbackOperator(_PipelineOperator):
    """Point ``champion`` back at an earlier version (the one it replaced, or ``params.to_version``)."""

    # Nothing to roll back to (no champion, no such version) is a RegistryError: retrying will not change it.
    also_permanent = (RegistryError,)

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.services.deploy import rollback

        params = context.get("params") or {}
        to_version = params.get("to_version")
        reason = params.get("reason") or "rollback from Airflow"
        entry = rollback(
            self.config,
            to_version=int(to_version) if to_version else None,
            actor=_actor(context),
            reason=reason,
        )
        self._alert(
            context,
            "promoted",
            f"rolled back to v{entry['to_version']}",
            f"champion v{entry['from_version']} -> v{entry['to_version']}: {reason}",
        )
        return entry


class GateRejectedOperator(_PipelineOperator):
    """The gate said no (``verdict``): keep the champion, log the reasons and send a warning alert."""

    ui_color = "#f8d7da"
    template_fields = ("verdict",)

    def __init__(self, *, verdict: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict

    def execute(self, context: Context) -> dict[str, Any]:
        verdict = self.verdict
        challenger = verdict["challenger_version"]
        champion = f"v{verdict['champion_version']}" if verdict["champion_version"] else "none"
        summary = "; ".join(verdict["reasons"])
        self.log.warning(
            "Gate REJECTED %s v%s (champion stays %s): %s", self.config.name, challenger, champion, summary
        )
        drift = run_params(context).get("trigger") == "drift"
        title = f"challenger v{challenger} rejected by the gate"
        if drift:
            title = f"drift persists, retrained model rejected (v{challenger})"
            summary = f"{summary}. The champion {champion} keeps serving data that has drifted."
        self._alert(
            context,
            "rejected",
            title,
            summary,
            details={"champion": champion, "challenger_metrics": verdict["challenger_metrics"]},
        )
        return {
            "status": "rejected",
            "challenger_version": challenger,
            "reasons": verdict["reasons"],
            "drift_persists": drift,
        }


# The monitoring DAG ---------------------------------------------------------------------------------------
class MonitorWindowOperator(_PipelineOperator):
    """Read the window of the inference log, measure drift, quality and live performance against the
    champion's reference, decide (ok, warn, retrain, no_data) and record it all in MLflow.

    The window: the form's ``start``/``end`` if given, else the run's data interval, else the last day
    (:func:`mlops.core.window.resolve_window`).
    """

    ui_color = "#e6f4ea"

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import UTC, datetime

        from mlops.core.window import resolve_window
        from mlops.services.monitor import monitor_window, retrain_reason

        params = context.get("params") or {}
        # A bad window, no reference, an unreadable log (MonitoringError): a person has to look, so the task
        # fails without retries (FailFast) unless the log was out of reach over the network.
        start, end = resolve_window(
            params.get("start"),
            params.get("end"),
            context.get("data_interval_start"),
            context.get("data_interval_end"),
            now=datetime.now(UTC),
        )
        outcome = monitor_window(self.config, start, end)
        ti = context["ti"]
        ti.xcom_push(key=MLFLOW_RUN_KEY, value=outcome.run.run_id)  # the failure alerts link to the run
        ti.xcom_push(key=MLFLOW_EXPERIMENT_KEY, value=outcome.run.experiment_id)
        result = outcome.to_dict()
        if outcome.decision.status == "retrain":
            result["reason"] = retrain_reason(outcome)
        self.log.info(
            "Window %s..%s: %s\n%s",
            start,
            end,
            outcome.decision.status.upper(),
            "\n".join(outcome.decision.reasons),
        )
        return result


class MonitorDecisionOperator(_Alerting, BaseBranchOperator):
    """Act on the window's ``outcome``: alert on ``warn`` and ``retrain`` (top drifted features, link to the
    report); on ``retrain`` hand the retraining request on (XCom key ``request``) and branch to it."""

    ui_color = "#fdf3d7"
    template_fields = ("outcome",)

    def __init__(self, *, config: PipelineConfig, outcome: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.outcome = outcome

    def choose_branch(self, context: Context) -> str:
        outcome = self.outcome
        status = outcome["status"]
        if status in ("warn", "retrain"):
            title = "drift detected: retraining requested" if status == "retrain" else "monitoring warning"
            self._alert(
                context,
                "drift",
                f"{title} (model v{outcome['model_version']})",
                "\n".join(outcome["reasons"]),
                details={
                    "window": f"{outcome['window_start']} .. {outcome['window_end']}",
                    "top drifted features": "; ".join(outcome["top_features"]) or "none",
                    "report": outcome["report_uri"] or "not drawn (see the MLflow run)",
                },
            )
        if status != "retrain":
            return DONE
        context["ti"].xcom_push(key=REQUEST_KEY, value=retraining_request(outcome))
        return REQUEST_RETRAINING


class RequestRetrainingOperator(_PipelineOperator):
    """Emit the Asset event that schedules ``<pipeline>_training`` on the data the policy selected
    (``request``: ``XComArg(act, key="request")``)."""

    ui_color = "#fde2e1"
    template_fields = ("request",)

    def __init__(self, *, request: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request = request

    def execute(self, context: Context) -> dict[str, Any]:
        request = dict(self.request)
        context["outlet_events"][retrain_asset(self.config.name)].extra = request
        self.log.info("Retraining of %s requested: %s", self.config.name, request)
        return request
