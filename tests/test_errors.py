"""The error hierarchy's notion of permanence: which errors fail a task at once, which keep their retries."""

from __future__ import annotations

import pytest

from mlops.errors import (
    ConfigError,
    DataValidationError,
    MlopsError,
    ModelFitError,
    MonitoringError,
    PromotionConflict,
    RegistryError,
    SchemaError,
    StorageError,
    TrainingError,
    is_permanent,
    is_transient,
)

pytestmark = pytest.mark.unit


def _raised_from(error: BaseException, cause: BaseException, *, explicit: bool = True) -> BaseException:
    """``error`` as raised while handling ``cause`` (``raise error from cause``, or implicitly chained)."""
    try:
        try:
            raise cause
        except BaseException:
            if explicit:
                raise error from cause
            raise error  # noqa: B904 (the implicit context is what this builds)
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("include/pipelines/x.yaml", ["field 'target': required"]),
        DataValidationError("2 of 31 expectations failed", quarantine_uri="file:///q"),
        SchemaError("pipeline 'x': the target column 'y' is missing"),
        ModelFitError("pipeline 'x': RandomForestClassifier refused model.params.n_estimators = -3"),
        PromotionConflict("the champion moved"),
        MonitoringError("no reference for model version 1"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_of_config_data_schema_and_parameters_are_permanent(error: MlopsError) -> None:
    assert error.permanent and is_permanent(error)


@pytest.mark.parametrize(
    "error",
    [
        StorageError("s3://bucket/x.csv: cannot read"),
        TrainingError("the estimator ran out of memory"),
        RegistryError("cannot read alias 'champion'"),
        MlopsError("anything else"),
        ValueError("not a kit error: nobody said it is permanent"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_other_errors_keep_their_retries(error: BaseException) -> None:
    assert not is_permanent(error)


def test_a_permanent_error_caused_by_the_network_keeps_its_retries() -> None:
    import botocore.exceptions
    import httpx
    import requests

    causes: list[BaseException] = [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
        httpx.ConnectError("All connection attempts failed"),
        requests.exceptions.ConnectionError("Max retries exceeded"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket"),
    ]
    for cause in causes:
        assert is_transient(cause), cause
        assert not is_permanent(_raised_from(MonitoringError("the inference log cannot be read"), cause))
        assert not is_permanent(_raised_from(DataValidationError("unreadable"), cause, explicit=False))
    # Two links away: a StorageError wrapping the connection error, wrapped in turn.
    storage = _raised_from(StorageError("s3://b/x: cannot read"), ConnectionResetError(104, "reset"))
    assert not is_permanent(_raised_from(MonitoringError("log"), storage))


def test_answers_of_the_mlflow_server() -> None:
    from mlflow.exceptions import MlflowException, RestException

    assert is_transient(RestException({"error_code": "INTERNAL_ERROR", "message": "database is locked"}))
    assert is_transient(RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}))
    assert not is_transient(RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"}))
    assert not is_transient(RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}))
    # MLflow's client for a 5xx answer that is not JSON, and a local store's error (not the server's).
    assert is_transient(
        MlflowException("API request to endpoint /api/2.0/mlflow/runs/get failed with error code 503 != 200")
    )
    assert not is_transient(MlflowException("Run 'abc' not found"))
    # A registry error raised on a 5xx answer keeps its retries even where RegistryError counts as permanent.
    server = RestException({"error_code": "INTERNAL_ERROR", "message": "boom"})
    assert not is_permanent(_raised_from(PromotionConflict("champion moved?"), server))


def test_sklearn_parameter_errors_are_plain_value_errors() -> None:
    """train_model turns ValueError/TypeError of fit into ModelFitError: InvalidParameterError is one."""
    from sklearn.utils._param_validation import InvalidParameterError

    assert issubclass(InvalidParameterError, ValueError)
