"""Every task id and XCom key of the pipeline DAGs, in one place.

The DAG factory names its tasks with these, the operators and the approval step exchange data under these
keys, and the alerts look their MLflow links up with them. Nothing here imports Airflow.
"""

from __future__ import annotations

__all__ = [
    "ACT",
    "ANALYZE",
    "APPROVE",
    "DEPLOY",
    "DONE",
    "GATE",
    "INGEST",
    "MLFLOW_EXPERIMENT_KEY",
    "MLFLOW_RUN_KEY",
    "REGISTER",
    "REJECTED",
    "REQUEST_KEY",
    "REQUEST_RETRAINING",
    "ROLLBACK",
    "TRAIN",
    "TRIGGER_KEYS",
    "VALIDATE",
    "VERDICT_KEY",
    "WAIT_FOR_BATCH",
]

# The training DAG: [wait_for_batch >>] ingest >> validate >> train >> register >> gate >> [deploy |
# gate_rejected], with wait_for_batch where ``data.wait`` is set and approve between the gate and deploy where
# ``deploy.approval.required``.
INGEST = "ingest"
VALIDATE = "validate"
TRAIN = "train"
REGISTER = "register"
GATE = "gate"
APPROVE = "approve"
DEPLOY = "deploy"
REJECTED = "gate_rejected"
#: The head of the training DAG where ``data.wait`` is set: waits (deferred) until the batch lands.
WAIT_FOR_BATCH = "wait_for_batch"

# The monitoring DAG: analyze >> act >> [request_retraining | done].
ANALYZE = "analyze"
ACT = "act"
REQUEST_RETRAINING = "request_retraining"
DONE = "done"

# The rollback DAG's only task.
ROLLBACK = "rollback"

#: XCom key of the gate's verdict. A branch's return value never reaches XCom (the skip of the other branch
#: ends its execute() with an exception), so the gate pushes the verdict under this key; the approval step
#: hands the verdict it approved on under the same key, so deploy reads it from its direct upstream.
VERDICT_KEY = "verdict"
#: XCom key of the retraining request the monitoring decision (``act``) hands to ``request_retraining``.
REQUEST_KEY = "request"
#: XCom keys of the MLflow run that ``train`` and ``analyze`` logged (the alerts link to it).
MLFLOW_RUN_KEY = "mlflow_run_id"
MLFLOW_EXPERIMENT_KEY = "mlflow_experiment_id"

#: Keys a retraining request (an Asset event's extra, or a run's conf) may carry into a training run.
TRIGGER_KEYS = ("data_uri", "reason", "training_window", "trigger", "monitoring_run_id")
