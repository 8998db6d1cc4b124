"""Build each pipeline's DAGs from its config. Imported by the thin files in ``dags/`` at every parse:
only Airflow, pydantic and YAML are loaded here; the ML libraries wait inside the operators' ``execute()``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param

from mlops import operators, settings
from mlops.alerts import FailureAlert
from mlops.config import PipelineConfig, load_all

log = logging.getLogger(__name__)

TRAINING_DOC = """\
# {name}: training

{description}

**Task** {task} · **target** `{target}` · **estimator** `{estimator}` · **features** {n_features}
({numeric} numeric, {categorical} categorical) · **default data** `{source}` · **schedule** `{schedule}`

`ingest` copies the batch at `data_uri` into the data store (content-addressed) → `validate` checks it with
Great Expectations (a bad batch is quarantined and the run fails here; the champion is untouched) → `train`
fits the model and logs an MLflow run with lineage → `register` adds a version of model `{name}` with alias
`challenger` → `gate` scores challenger and champion on one holdout (primary metric `{metric}`) and branches
to `deploy` (compare-and-set promotion of alias `champion`) or `gate_rejected` (warning alert).

Trigger with a config: `data_uri` (a path, file:// or s3:// URI of a CSV/Parquet batch), optionally `model`
(`{{"estimator": "...", "params": {{...}}}}`) to try another recipe, and `reason` (kept on the MLflow run).
"""


def _training_doc(config: PipelineConfig) -> str:
    return TRAINING_DOC.format(
        name=config.name,
        description=config.description or "",
        task=config.task,
        target=config.target,
        estimator=config.model.estimator,
        n_features=len(config.features),
        numeric=len(config.numeric_features),
        categorical=len(config.categorical_features),
        source=config.data.source,
        schedule=config.schedule or "none (manual)",
        metric=config.gate.primary_metric,
    )


def build_training_dag(config: PipelineConfig) -> DAG:
    """The ``<name>_training`` DAG: ingest → validate → train → register → gate → deploy | gate_rejected."""
    alert = FailureAlert(config.name, config.alerts)
    default_args: dict[str, Any] = {
        "owner": config.airflow.owner,
        "retries": config.airflow.retries,
        "retry_delay": timedelta(seconds=config.airflow.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": alert,
    }
    params = {
        "data_uri": Param(
            config.data.source,
            type="string",
            minLength=1,
            title="Data batch",
            description="Path, file:// or s3:// URI of a CSV or Parquet batch ({ds} = the run's date).",
        ),
        "model": Param(
            None,
            type=["null", "object"],
            title="Model override",
            description='Optional: {"estimator": "sklearn....", "params": {...}} to try another recipe.',
        ),
        "reason": Param(
            "", type="string", title="Reason", description="Why this run; kept on the MLflow run."
        ),
    }
    year, month, day = (int(part) for part in config.airflow.start_date.split("-"))
    with DAG(
        dag_id=config.training_dag_id,
        description=f"Train, gate and deploy the {config.name} model",
        doc_md=_training_doc(config),
        schedule=config.schedule,
        start_date=datetime(year, month, day, tzinfo=UTC),
        catchup=config.airflow.catchup,
        max_active_runs=config.airflow.max_active_runs,
        tags=["mlops", "training", config.name, *config.tags],
        params=params,
        default_args=default_args,
        on_failure_callback=FailureAlert(config.name, config.alerts, dag_level=True),
    ) as dag:
        ingest = operators.IngestBatchOperator(task_id=operators.INGEST, config=config)
        validate = operators.ValidateBatchOperator(task_id=operators.VALIDATE, config=config)
        train = operators.TrainModelOperator(task_id=operators.TRAIN, config=config)
        register = operators.RegisterModelOperator(task_id=operators.REGISTER, config=config)
        gate = operators.EvaluateGateOperator(task_id=operators.GATE, config=config)
        deploy = operators.DeployModelOperator(task_id=operators.DEPLOY, config=config)
        rejected = operators.GateRejectedOperator(task_id=operators.REJECTED, config=config)
        ingest >> validate >> train >> register >> gate >> [deploy, rejected]
    return dag


ROLLBACK_DOC = """\
# {name}: rollback

Points alias `champion` of model `{name}` back at an earlier version, with compare-and-set, and records who,
when, from which version to which and why on both versions. Leave `to_version` empty to return to the version
the current champion replaced. The model server follows within its poll interval (it is also told at once).
The same from a shell: `mlops rollback {name} [--to-version N] --reason "..."`.
"""


def build_rollback_dag(config: PipelineConfig) -> DAG:
    """The ``<name>_rollback`` DAG: one task, triggered by hand with a form."""
    alert = FailureAlert(config.name, config.alerts)
    with DAG(
        dag_id=f"{config.name}_rollback",
        description=f"Roll the {config.name} champion back to an earlier version",
        doc_md=ROLLBACK_DOC.format(name=config.name),
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["mlops", "rollback", config.name, *config.tags],
        params={
            "to_version": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Version to restore",
                description="Empty: the version the current champion replaced.",
            ),
            "reason": Param(
                "", type="string", minLength=1, title="Reason", description="Why (kept in the audit)."
            ),
        },
        default_args={
            "owner": config.airflow.owner,
            "retries": 1,
            "retry_delay": timedelta(seconds=30),
            "on_failure_callback": alert,
        },
        on_failure_callback=FailureAlert(config.name, config.alerts, dag_level=True),
    ) as dag:
        operators.RollbackOperator(task_id="rollback", config=config)
    return dag


def build_dags(directory: str | Path | None = None) -> dict[str, DAG]:
    """Every valid pipeline's DAGs by DAG id. Broken configs are skipped here (see ``config_problems``)."""
    configs, _errors = load_all(directory or settings.pipelines_dir())
    dags: dict[str, DAG] = {}
    for config in configs.values():
        try:
            built = [build_training_dag(config), build_rollback_dag(config)]
        except Exception:  # one pipeline that Airflow refuses must not take the others down
            log.exception("Pipeline %s: its DAGs could not be built; the other pipelines load", config.name)
            continue
        dags.update({dag.dag_id: dag for dag in built})
    return dags


def config_problems(directory: str | Path | None = None) -> str:
    """Every broken pipeline config, one readable block per file ("" when all are fine)."""
    _configs, errors = load_all(directory or settings.pipelines_dir())
    return "\n".join(str(error) for error in errors.values())
