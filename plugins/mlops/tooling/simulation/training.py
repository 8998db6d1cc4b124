"""Training and deployment through the core functions: what the training DAG does, without Airflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.config import PipelineConfig
    from mlops.core.gate import Verdict


@dataclass
class Deployment:
    """What became of one training: the version registered, the gate's verdict and whether it serves."""

    status: str  # promoted | rejected | validation_failed | deploy_failed
    version: int | None
    verdict: Verdict | None
    detail: str
    rows: int = 0

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"


def train_and_deploy(
    config: PipelineConfig,
    data_uri: str,
    reason: str,
    training_window: str | None = None,
    *,
    actor: str = "mlops simulate",
    trigger: str = "simulation",
) -> Deployment:
    """What the training DAG does, without Airflow: ingest → validate → train → register → gate → deploy.

    Args:
        config: The pipeline.
        data_uri: The batch to train on (a path or URI).
        reason: Why; kept on the training run and in the promotion's audit entry.
        training_window: Override ``training.window`` (``all`` or ``latest``), as a retraining request does.
        actor: Who deploys (the audit's "by").
        trigger: What asked for this training (tag ``mlops.trigger``).

    Returns:
        The outcome; a batch that fails validation, a challenger the gate rejects and a failed smoke test
        are outcomes, not errors (the champion keeps serving).
    """
    from mlops.data.batches import ingest_batch, validate_and_file
    from mlops.errors import DataValidationError, PromotionConflict
    from mlops.ml.training import train_model
    from mlops.registry import register_version
    from mlops.services.deploy import DeploymentRejected, deploy_challenger
    from mlops.services.gate import run_gate

    batch = ingest_batch(config, data_uri)
    try:
        accepted = validate_and_file(config, batch).batch
    except DataValidationError as exc:
        return Deployment("validation_failed", None, None, str(exc).split(" The batch ")[0])
    if training_window in ("all", "latest"):
        config = config.model_copy(
            update={"training": config.training.model_copy(update={"window": training_window})}
        )
    lineage = {"mlops.trigger_reason": reason, "mlops.trigger": trigger}
    result = train_model(config, accepted, lineage=lineage)
    version = register_version(
        config.name,
        result.model_uri,
        result.run_id,
        {**lineage, "mlops.run_id": result.run_id},
        config.description,
    )
    verdict = run_gate(config, version)
    if not verdict.passed:
        return Deployment("rejected", version, verdict, "; ".join(verdict.reasons), accepted.rows or 0)
    try:
        deploy_challenger(
            config,
            version,
            verdict.champion_version,
            actor=actor,
            reason=reason,
            evidence={"gate": verdict.reasons},
        )
    except (DeploymentRejected, PromotionConflict) as exc:
        return Deployment("deploy_failed", version, verdict, str(exc), accepted.rows or 0)
    return Deployment("promoted", version, verdict, "; ".join(verdict.reasons), accepted.rows or 0)
