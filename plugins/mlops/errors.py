"""One exception hierarchy for the whole kit.

Every message says what is wrong, where (file, field, column, rows) and, where it helps, what to do.
The full evidence (a validation result, a gate report) is saved before one of these is raised.

Permanent and transient errors: an error class with ``permanent = True`` (a config, the data, its schema, an
estimator's parameters, a refused deployment) fails the same way on every try, so the Airflow operators fail
its task at once instead of retrying it (:func:`is_permanent`). Everything else keeps the task's retries, and
so does a permanent error whose cause is transient (:func:`is_transient`: the network, S3, the MLflow server).
"""

from __future__ import annotations

from collections.abc import Iterator


class MlopsError(Exception):
    """Base class of every error the kit raises on purpose."""

    code = "MLOPS_ERROR"
    #: True when the same inputs fail the same way on every try: retrying only delays the alert.
    permanent = False


class ConfigError(MlopsError):
    """A pipeline config is missing, unreadable or breaks the schema."""

    code = "INVALID_CONFIG"
    permanent = True

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the pipeline config:\n{listed}")

    @classmethod
    def broken_pipelines(cls, report: str) -> ConfigError:
        """One error for a set of broken files (``report`` holds each file's own message)."""
        error = cls.__new__(cls)
        error.path, error.problems = "", [report]
        Exception.__init__(error, f"Broken pipeline configs (their DAGs are not loaded):\n{report}")
        return error


class StorageError(MlopsError):
    """A URI cannot be read or written."""

    code = "STORAGE_ERROR"


class DataAccessError(MlopsError):
    """A batch lies outside its pipeline's landing roots (a path, a traversal, a symlink that leads out, an S3
    key under another prefix): refused before anything of it is read or copied."""

    code = "DATA_ACCESS_DENIED"
    permanent = True


class DataValidationError(MlopsError):
    """A data batch broke its expectations; it has been quarantined."""

    code = "DATA_VALIDATION_FAILED"
    permanent = True

    def __init__(self, summary: str, *, quarantine_uri: str | None = None, failed: list[str] | None = None):
        self.summary = summary
        self.quarantine_uri = quarantine_uri
        self.failed = failed or []
        super().__init__(summary)


class SchemaError(MlopsError):
    """The data lacks a column the config declares, or holds values of another type (an accepted batch of an
    earlier config in the training snapshot, say)."""

    code = "SCHEMA_MISMATCH"
    permanent = True


class TrainingError(MlopsError):
    """The model could not be built or fitted."""

    code = "TRAINING_FAILED"


class ModelFitError(TrainingError):
    """The estimator refused its parameters or the training data (scikit-learn's ``InvalidParameterError``, a
    single class...): deterministic, so the same run fails the same way again."""

    code = "MODEL_FIT_FAILED"
    permanent = True


class RegistryError(MlopsError):
    """The model registry refused or could not answer."""

    code = "REGISTRY_ERROR"


class PromotionConflict(RegistryError):
    """The champion moved after the gate compared against it: promoting now would lose that update."""

    code = "PROMOTION_CONFLICT"
    permanent = True  # re-run to gate against the new champion; a retry of the same task cannot succeed


class StackError(MlopsError):
    """The production stack (native or compose) cannot start, stop or be described."""

    code = "STACK_ERROR"


class MonitoringError(MlopsError):
    """Monitoring cannot run: the reference is missing, the log cannot be read, nothing is in production."""

    code = "MONITORING_ERROR"
    permanent = True  # a person has to look (a log read over the network stays transient: is_transient)


# Permanent or transient -------------------------------------------------------------------------------------
#: Exceptions of the network, S3 and HTTP clients, by (module prefix, class name) anywhere in their class
#: hierarchy: named, not imported, because this module imports nothing (httpx, requests, botocore, urllib3).
_TRANSIENT_CLASSES = {
    ("httpx", "TransportError"),
    ("requests.exceptions", "ConnectionError"),
    ("requests.exceptions", "Timeout"),
    ("botocore.exceptions", "HTTPClientError"),
    ("botocore.exceptions", "ConnectionError"),
    ("urllib3.exceptions", "TimeoutError"),
    ("urllib3.exceptions", "ProtocolError"),
    ("urllib3.exceptions", "NewConnectionError"),
    ("urllib3.exceptions", "MaxRetryError"),
}


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its causes (``raise ... from``) and contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(error: BaseException) -> bool:
    """True for an error another try may not meet: a connection refused or reset, a timeout, a server error.

    Recognised: Python's ``ConnectionError`` and ``TimeoutError``; httpx's transport errors; requests',
    botocore's and urllib3's connection errors and timeouts; an answer of the MLflow server with a 5xx or 429
    status (its ``RestException``, or the ``MlflowException`` "API request to ... failed" of a body that is not
    JSON). MLflow's client wraps a refused connection in an ``MlflowException`` whose context is requests'
    error: the chain walked by :func:`is_permanent` finds it there.
    """
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    classes = [(cls.__module__, cls.__name__) for cls in type(error).__mro__]
    from_server = any(
        module.startswith("mlflow") and name == "RestException" for module, name in classes
    ) or (
        any(module.startswith("mlflow") and name == "MlflowException" for module, name in classes)
        and str(error).startswith("API request to")
    )
    if from_server:
        try:
            status = int(error.get_http_status_code())  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            status = 0
        if status >= 500 or status == 429:
            return True
    return any(
        module.startswith(prefix) and name == wanted
        for module, name in classes
        for prefix, wanted in _TRANSIENT_CLASSES
    )


def is_permanent(error: BaseException, also: tuple[type[BaseException], ...] = ()) -> bool:
    """True when retrying ``error`` cannot help: a kit error marked ``permanent`` (or an instance of one of the
    types ``also`` names, permanent where the caller stands) with no transient error (:func:`is_transient`)
    among its causes."""
    marked = isinstance(error, MlopsError) and error.permanent
    if not (marked or isinstance(error, also)):
        return False
    return not any(is_transient(link) for link in _chain(error))
