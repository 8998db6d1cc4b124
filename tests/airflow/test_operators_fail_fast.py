"""Permanent errors fail an operator's task at once (``AirflowFailException``); the others keep their retries.

The conversion lives in one place, ``operators.FailFast``: these tests raise each kind of error from the
entry points Airflow calls (``execute``, ``execute_complete``, ``choose_branch``) of operators built like the
real ones. No scheduler, no database: ``execute()`` is called directly.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlops.config import PipelineConfig

pytestmark = pytest.mark.unit


def _failing(base: type, error: BaseException, entry: str = "execute") -> Any:
    """A subclass of ``base`` whose ``entry`` raises ``error``, as a task of its own."""

    def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise error

    return type(f"Failing{base.__name__}", (base,), {entry: fail})


def _connection_refused(error: BaseException) -> BaseException:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as cause:
            raise error from cause
    except BaseException as raised:
        return raised


def test_every_entry_point_of_the_real_operators_is_guarded() -> None:
    from mlops.airflow import operators

    guarded = {
        operators.IngestBatchOperator: "execute",
        operators.ValidateBatchOperator: "execute",
        operators.TrainModelOperator: "execute",
        operators.RegisterModelOperator: "execute",
        operators.EvaluateGateOperator: "choose_branch",
        operators.DeployModelOperator: "execute_complete",
        operators.RollbackOperator: "execute",
        operators.GateRejectedOperator: "execute",
        operators.MonitorWindowOperator: "execute",
        operators.MonitorDecisionOperator: "choose_branch",
        operators.RequestRetrainingOperator: "execute",
    }
    for operator, entry in guarded.items():
        assert getattr(getattr(operator, entry), "__fail_fast__", False), f"{operator.__name__}.{entry}"
    assert operators.DeployModelOperator.execute.__fail_fast__  # type: ignore[attr-defined]


def test_a_permanent_error_fails_the_task_without_retries(breast_cancer: PipelineConfig) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.airflow.operators import TrainModelOperator
    from mlops.errors import ModelFitError

    error = ModelFitError("pipeline 'breast_cancer': ... refused model.params.n_estimators = -3: ...")
    task = _failing(TrainModelOperator, error)(task_id="train", config=breast_cancer, batch={})
    with pytest.raises(AirflowFailException, match="n_estimators = -3") as failed:
        task.execute({})
    assert failed.value.__cause__ is error  # the original error stays in the chain (and in the log)


@pytest.mark.parametrize("kind", ["storage", "fit_crash", "bug", "permanent_over_the_network"])
def test_transient_and_unknown_errors_keep_their_retries(breast_cancer: PipelineConfig, kind: str) -> None:
    from mlops.airflow.operators import TrainModelOperator
    from mlops.errors import DataValidationError, StorageError, TrainingError

    error = {
        "storage": StorageError("s3://bucket/batch.csv: cannot read"),
        "fit_crash": TrainingError("the estimator crashed"),
        "bug": KeyError("a bug of ours"),
        "permanent_over_the_network": _connection_refused(DataValidationError("the batch cannot be read")),
    }[kind]
    task = _failing(TrainModelOperator, error)(task_id="train", config=breast_cancer, batch={})
    with pytest.raises(type(error)) as raised:
        task.execute({})
    assert raised.value is error


def test_branches_and_resumed_tasks_fail_fast_too(breast_cancer: PipelineConfig) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.airflow.operators import DeployModelOperator, EvaluateGateOperator
    from mlops.errors import PromotionConflict, SchemaError

    gate = _failing(EvaluateGateOperator, SchemaError("features changed"), "choose_branch")(
        task_id="gate", config=breast_cancer, registered={}
    )
    with pytest.raises(AirflowFailException, match="features changed"):
        gate.execute({})
    deploy = _failing(DeployModelOperator, PromotionConflict("the champion moved"), "execute_complete")(
        task_id="deploy", config=breast_cancer, verdict={}
    )
    with pytest.raises(AirflowFailException, match="champion moved"):
        deploy.execute_complete({}, {})


def test_the_rollback_counts_registry_errors_as_permanent(breast_cancer: PipelineConfig) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.airflow.operators import RollbackOperator, TrainModelOperator
    from mlops.errors import RegistryError

    nothing = RegistryError("'breast_cancer' has no champion to roll back")
    rollback = _failing(RollbackOperator, nothing)(task_id="rollback", config=breast_cancer)
    with pytest.raises(AirflowFailException, match="no champion to roll back"):
        rollback.execute({})
    # ... unless the registry was out of reach, and nowhere else.
    unreachable = _connection_refused(RegistryError("cannot read alias 'champion'"))
    rollback = _failing(RollbackOperator, unreachable)(task_id="rollback", config=breast_cancer)
    with pytest.raises(RegistryError):
        rollback.execute({})
    train = _failing(TrainModelOperator, RegistryError("x"))(task_id="train", config=breast_cancer, batch={})
    with pytest.raises(RegistryError):
        train.execute({})
