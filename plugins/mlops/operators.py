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

#: Task ids of the training DAG (the gate branches to one of the last two).
INGEST, VALIDATE, TRAIN, REGISTER, GATE, DEPLOY, REJECTED = (
    "ingest",
    "validate",
    "train",
    "register",
    "gate",
    "deploy",
    "gate_rejected",
)


def _run_info(context: Context) -> dict[str, str]:
    ti = context["ti"]
    params = context.get("params") or {}
    info = {
        "airflow.dag_id": ti.dag_id,
        "airflow.run_id": ti.run_id,
        "airflow.try_number": str(ti.try_number),
    }
    if params.get("reason"):
        info["mlops.trigger_reason"] = str(params["reason"])
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
        return ingest_batch(self.config, self.data_uri or None, when).to_dict()


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
        override = (context.get("params") or {}).get("model") or None
        result = train_model(self.config, batch, lineage=_run_info(context), model_override=override)
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
        return DEPLOY if verdict.passed else REJECTED


class DeployModelOperator(_PipelineOperator):
    """Smoke test, canary or shadow phase where configured, then compare-and-set promotion to ``champion``."""

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.alerts import send_event
        from mlops.deploy import DeploymentRejected, deploy_challenger
        from mlops.errors import PromotionConflict

        verdict = context["ti"].xcom_pull(task_ids=GATE, key="verdict")
        version = verdict["challenger_version"]
        reason = (context.get("params") or {}).get("reason") or "passed the gate"
        try:
            entry = deploy_challenger(
                self.config,
                version,
                verdict["champion_version"],
                actor=_actor(context),
                reason=reason,
                evidence={"run_id": context["ti"].run_id, "gate": verdict["reasons"]},
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
        send_event(
            self.config.name,
            self.config.alerts,
            "rejected",
            f"challenger v{verdict['challenger_version']} rejected by the gate",
            summary,
            context,
            details={"champion": champion, "challenger_metrics": verdict["challenger_metrics"]},
        )
        return {
            "status": "rejected",
            "challenger_version": verdict["challenger_version"],
            "reasons": verdict["reasons"],
        }
