"""Build each pipeline's DAGs from its config. Imported by the thin files in ``dags/`` at every parse:
only Airflow, pydantic and YAML are loaded here; the ML libraries wait inside the operators' ``execute()``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import (
    DAG,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
    XComArg,
)

from mlops.airflow import operators, task_ids
from mlops.airflow.alerts import FailureAlert
from mlops.airflow.batch_wait import WaitForBatchOperator
from mlops.config import PipelineConfig, load_all, settings

log = logging.getLogger(__name__)

TRAINING_DOC = """\
# {name}: training

{description}

**Task** {task} · **target** `{target}` · **estimator** `{estimator}` · **features** {n_features}
({numeric} numeric, {categorical} categorical) · **default data** `{source}`

**Runs** {schedule}
{wait}
`ingest` copies the batch at `data_uri` into the data store (content-addressed) → `validate` checks it with
Great Expectations (a bad batch is quarantined and the run fails here; the champion is untouched) → `train`
fits the model and logs an MLflow run with lineage → `register` adds a version of model `{name}` with alias
`challenger` → `gate` scores challenger and champion on one holdout (primary metric `{metric}`) and branches
to `deploy` (compare-and-set promotion of alias `champion`) or `gate_rejected` (warning alert).

Trigger from the form (▶): `data_uri` is the batch (default: the day's file in the landing folder above);
`reason`, `training_window`, `force` and `model` (`{{"estimator": "...", "params": {{...}}}}`, another recipe) are
optional. A run whose data, config and code equal an existing version's is skipped unless `force` is ticked.
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
        source=settings.data_location(config.data.source),
        schedule=_schedule_text(config),
        metric=config.gate.primary_metric,
        wait=(
            f"\n`wait_for_batch`: a scheduled run waits in the triggerer (up to {config.data.wait.timeout_hours:g} h) "
            'until its batch lands, then goes on; past that it ends as "no data" (skipped, with a warning '
            "alert, not a failure). A manual run does not wait: a missing batch fails it at once.\n"
            if config.data.wait
            else ""
        ),
    )


def _schedule_text(config: PipelineConfig) -> str:
    """The training DAG's real schedule, in words: cron, asset, both, or by hand."""
    retrains = config.monitoring.enabled and config.monitoring.retrain.enabled
    asset = f"when monitoring asks to retrain (asset `{config.name}_retrain`)" if retrains else ""
    if config.schedule is None:
        return f"by hand, and {asset}" if asset else "by hand only (no schedule)"
    cron = f"on the schedule `{config.schedule}` (UTC)"
    if asset and config.schedule not in ("@once", "@continuous"):
        return f"{cron}, and {asset}; the DAG header shows the asset only"
    return cron


def _start_date(config: PipelineConfig) -> datetime:
    year, month, day = (int(part) for part in config.airflow.start_date.split("-"))
    return datetime(year, month, day, tzinfo=UTC)


def _training_schedule(config: PipelineConfig) -> Any:
    """The config's schedule, and (when monitoring may retrain) the retraining Asset: either starts a run."""
    if not (config.monitoring.enabled and config.monitoring.retrain.enabled):
        return config.schedule
    asset = operators.retrain_asset(config.name)
    if config.schedule is None:
        return [asset]
    if config.schedule in ("@once", "@continuous"):
        return (
            config.schedule
        )  # no cron timetable to combine with: retraining requests wait for a run by hand
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(config.schedule, timezone="UTC"), assets=[asset]
    )


def _monitoring_schedule(config: PipelineConfig) -> Any:
    """``monitoring.schedule`` with data intervals: each run covers the span since the previous tick (with
    ``"0 * * * *"`` the hour before it) and its window is that interval. A plain cron string would get
    Airflow 3's ``CronTriggerTimetable``, whose runs have an empty interval (the window would fall back to
    the last day)."""
    schedule = config.monitoring.schedule
    if schedule is None or schedule in ("@once", "@continuous"):
        return schedule
    return CronDataIntervalTimetable(schedule, timezone="UTC")


def default_args(
    config: PipelineConfig,
    *,
    retries: int | None = None,
    retry_delay: timedelta | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The tasks' defaults of every DAG of a pipeline: its owner, retries and retry delay (from the config
    unless given), and the failure alert to the pipeline's routes as each task's ``on_failure_callback``."""
    return {
        "owner": config.airflow.owner,
        "retries": config.airflow.retries if retries is None else retries,
        "retry_delay": retry_delay or timedelta(seconds=config.airflow.retry_delay_seconds),
        "on_failure_callback": FailureAlert(config.name, config.alerts),
        **extra,
    }


def _dag_failure_alert(config: PipelineConfig) -> FailureAlert:
    """The DAG-level failure callback: speaks only for failures no task reports (a run timeout...)."""
    return FailureAlert(config.name, config.alerts, dag_level=True)


def build_training_dag(config: PipelineConfig) -> DAG:
    """The ``<name>_training`` DAG: ingest → validate → train → register → gate → deploy | gate_rejected
    (wait_for_batch → ingest where ``data.wait`` is set; gate → approve → deploy where an approval is
    required). Every edge is a data edge: each task takes its upstream's result as an XComArg."""
    source = settings.data_location(config.data.source)
    window = config.training.window
    params = {
        "data_uri": Param(
            source,
            type="string",
            minLength=1,
            title="Data batch",
            description=f"Required: the CSV or Parquet file this run trains on. {{ds}} is the run's date "
            f"(YYYY-MM-DD), so the default reads {source}. Put the day's batch there (docs/deploy.md), or "
            "give another path or s3:// URI under the pipeline's landing roots.",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            title="Reason",
            description="Optional: why this run, in a few words (kept on the MLflow run and in its alerts).",
        ),
        "training_window": Param(
            "config",
            type="string",
            enum=["config", "all", "latest"],
            values_display={
                "config": f"as configured ({window})",
                "all": "all accepted batches",
                "latest": "only this run's batch",
            },
            title="Training window",
            description="Which accepted batches the model trains on (always set: the default keeps the YAML's).",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Train even if nothing changed",
            description="Always set (unticked by default): a run whose data, config and code equal an "
            "existing version's is skipped and names that version; tick this to train and register anyway.",
        ),
        "model": Param(
            {},
            type=["object", "null"],
            title="Model override",
            description='Optional: {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": '
            '{"n_estimators": 300}} tries another recipe; leave {} to train the YAML\'s.',
        ),
    }
    with DAG(
        dag_id=config.training_dag_id,
        description=f"Train, gate and deploy the {config.name} model",
        doc_md=_training_doc(config),
        schedule=_training_schedule(config),
        start_date=_start_date(config),
        catchup=config.airflow.catchup,
        max_active_runs=config.airflow.max_active_runs,
        tags=["mlops", "training", config.name, *config.tags],
        params=params,
        # Exponential backoff (Airflow 3 takes the multiplier: ``True`` would mean 1, a constant delay).
        default_args=default_args(
            config, retry_exponential_backoff=2.0, max_retry_delay=timedelta(minutes=30)
        ),
        on_failure_callback=_dag_failure_alert(config),
    ) as dag:
        if config.data.wait is not None:
            # The batch may land after the run starts: wait for it (deferred), then ingest what it found.
            arrived = WaitForBatchOperator(task_id=task_ids.WAIT_FOR_BATCH, config=config)
            ingest = operators.IngestBatchOperator(
                task_id=task_ids.INGEST, config=config, data_uri=arrived.output
            )
        else:
            ingest = operators.IngestBatchOperator(task_id=task_ids.INGEST, config=config)
        validate = operators.ValidateBatchOperator(
            task_id=task_ids.VALIDATE, config=config, batch=ingest.output
        )
        train = operators.TrainModelOperator(
            task_id=task_ids.TRAIN, config=config, batch=validate.output["batch"]
        )
        register = operators.RegisterModelOperator(
            task_id=task_ids.REGISTER, config=config, trained=train.output
        )
        gate = operators.EvaluateGateOperator(
            task_id=task_ids.GATE, config=config, registered=register.output
        )
        verdict = XComArg(gate, key=task_ids.VERDICT_KEY)
        operators.GateRejectedOperator(task_id=task_ids.REJECTED, config=config, verdict=verdict)
        if config.deploy.approval.required:
            # Only then: a person approves between the gate and deploy (the DAG is unchanged otherwise). Deploy
            # reads the verdict from the approval, its direct upstream, which hands it on.
            from mlops.airflow.approval import DeploymentApprovalOperator

            approve = DeploymentApprovalOperator(task_id=task_ids.APPROVE, config=config, verdict=verdict)
            operators.DeployModelOperator(
                task_id=task_ids.DEPLOY,
                config=config,
                verdict=XComArg(approve, key=task_ids.VERDICT_KEY),
                approval=approve.output,
            )
        else:
            operators.DeployModelOperator(task_id=task_ids.DEPLOY, config=config, verdict=verdict)
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
        default_args=default_args(config, retries=1, retry_delay=timedelta(seconds=30)),
        on_failure_callback=_dag_failure_alert(config),
    ) as dag:
        operators.RollbackOperator(task_id=task_ids.ROLLBACK, config=config)
    return dag


MONITORING_DOC = """\
# {name}: monitoring

Looks at one window of the inference log (the run's data interval, or `start`/`end` from the form) against
the reference of the champion (a sample of its training rows, stored with the version):

`analyze` measures per-feature drift with Evidently's stat tests (numeric: `{numeric}`, categorical:
`{categorical}`; per-feature overrides in `monitoring.drift.features`), prediction drift, data quality (the
pipeline's expectations on live inputs) and, where feedback labels arrived, live `{metric}` against the
holdout; it logs an MLflow run in experiment `{name}-monitoring` (drift scores as metrics, `report.html`,
`summary.json`) and decides `ok`, `warn`, `retrain` or `no_data` under the policy
(`{consecutive}` drifted windows in a row, cooldown {cooldown} h, at least {labels} labelled rows, at most
{per_day} a day) → `act` alerts on `warn` and `retrain` → `request_retraining` emits the Asset event
`{name}_retrain` that starts `{name}_training` on the selected labelled live rows (`{data}` data).
"""


def build_monitoring_dag(config: PipelineConfig) -> DAG:
    """The ``<name>_monitoring`` DAG: analyze → act → request_retraining | done (data edges but the last)."""
    from airflow.providers.standard.operators.empty import EmptyOperator

    monitoring = config.monitoring
    with DAG(
        dag_id=config.monitoring_dag_id,
        description=f"Drift, quality and live performance of the {config.name} model; retrain on drift",
        doc_md=MONITORING_DOC.format(
            name=config.name,
            numeric=f"{monitoring.drift.numeric.method} >= {monitoring.drift.numeric.threshold}",
            categorical=f"{monitoring.drift.categorical.method} >= {monitoring.drift.categorical.threshold}",
            metric=config.gate.primary_metric,
            consecutive=monitoring.retrain.consecutive_windows,
            cooldown=monitoring.retrain.cooldown_hours,
            labels=monitoring.retrain.min_new_labels,
            per_day=monitoring.retrain.max_per_day,
            data=monitoring.retrain.data,
        ),
        schedule=_monitoring_schedule(config),
        start_date=_start_date(config),
        catchup=False,
        max_active_runs=1,
        tags=["mlops", "monitoring", config.name, *config.tags],
        params={
            "start": Param(
                "",
                type="string",
                title="Window start",
                description="ISO date-time (UTC if no zone), e.g. 2026-11-26T00:00. Empty: the run's data "
                "interval, or the day before 'end'.",
            ),
            "end": Param(
                "",
                type="string",
                title="Window end",
                description="ISO date-time, exclusive. Empty: the run's data interval, or now.",
            ),
        },
        default_args=default_args(config),
        on_failure_callback=_dag_failure_alert(config),
    ) as dag:
        analyze = operators.MonitorWindowOperator(task_id=task_ids.ANALYZE, config=config)
        act = operators.MonitorDecisionOperator(task_id=task_ids.ACT, config=config, outcome=analyze.output)
        operators.RequestRetrainingOperator(
            task_id=task_ids.REQUEST_RETRAINING,
            config=config,
            request=XComArg(act, key=task_ids.REQUEST_KEY),
            outlets=[operators.retrain_asset(config.name)],
        )
        act >> EmptyOperator(task_id=task_ids.DONE)
    return dag


def build_dags(directory: str | Path | None = None) -> dict[str, DAG]:
    """Every valid pipeline's DAGs by DAG id. Broken configs are skipped here (see ``config_problems``)."""
    configs, _errors = load_all(directory or settings.pipelines_dir())
    dags: dict[str, DAG] = {}
    for config in configs.values():
        try:
            built = [build_training_dag(config), build_rollback_dag(config)]
            if config.monitoring.enabled:
                built.append(build_monitoring_dag(config))
        except Exception:  # one pipeline that Airflow refuses must not take the others down
            log.exception("Pipeline %s: its DAGs could not be built; the other pipelines load", config.name)
            continue
        dags.update({dag.dag_id: dag for dag in built})
    return dags


def config_problems(directory: str | Path | None = None) -> str:
    """Every broken pipeline config, one readable block per file ("" when all are fine)."""
    _configs, errors = load_all(directory or settings.pipelines_dir())
    return "\n".join(str(error) for error in errors.values())
