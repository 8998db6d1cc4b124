"""One exception hierarchy for the whole kit.

Every message says what is wrong, where (file, field, column, rows) and, where it helps, what to do.
The full evidence (a validation result, a gate report) is saved before one of these is raised.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class of every error the kit raises on purpose."""

    code = "MLOPS_ERROR"


class ConfigError(MlopsError):
    """A pipeline config is missing, unreadable or breaks the schema."""

    code = "INVALID_CONFIG"

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


class DataValidationError(MlopsError):
    """A data batch broke its expectations; it has been quarantined."""

    code = "DATA_VALIDATION_FAILED"

    def __init__(self, summary: str, *, quarantine_uri: str | None = None, failed: list[str] | None = None):
        self.summary = summary
        self.quarantine_uri = quarantine_uri
        self.failed = failed or []
        super().__init__(summary)


class TrainingError(MlopsError):
    """The model could not be built or fitted."""

    code = "TRAINING_FAILED"


class RegistryError(MlopsError):
    """The model registry refused or could not answer."""

    code = "REGISTRY_ERROR"


class PromotionConflict(RegistryError):
    """The champion moved after the gate compared against it: promoting now would lose that update."""

    code = "PROMOTION_CONFLICT"


class StackError(MlopsError):
    """The production stack (native or compose) cannot start, stop or be described."""

    code = "STACK_ERROR"


class MonitoringError(MlopsError):
    """Monitoring cannot run: the reference is missing, the log cannot be read, nothing is in production."""

    code = "MONITORING_ERROR"
