"""The MLflow model registry, our way: one registered model per pipeline, aliases, tags, and a
compare-and-set promotion of the ``champion`` alias.

Stages are deprecated in MLflow 3 and never used. Version numbers are ints here (the REST store returns
strings; we convert).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlops.config import settings
from mlops.errors import PromotionConflict, RegistryError
from mlops.ml import tracking
from mlops.registry.integrity import DIGEST_TAG, MANIFEST_TAG, record_digest

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
AUDIT_PREFIX = "mlops.audit."


def client() -> Any:
    """The MLflow client of the configured store (:func:`mlops.ml.tracking.client`)."""
    return tracking.client()


def create_version(
    name: str, model_uri: str, run_id: str, tags: dict[str, str], description: str = ""
) -> int:
    """Register ``model_uri`` as a new version of ``name`` (created if missing) and point ``challenger`` at it.

    The bare registration: :func:`mlops.registry.governance.register_version` adds the semantic version. The
    digest of the version's files is checked against its training run's and recorded on the version
    (:func:`mlops.registry.integrity.record_digest`); a caller's ``tags`` cannot set it.

    Raises:
        ModelIntegrityError: the model's files changed since training; the version exists but no loader will
            accept it.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    tags = {k: v for k, v in tags.items() if k not in (DIGEST_TAG, MANIFEST_TAG)}
    mlflow_client = client()
    try:
        mlflow_client.create_registered_model(
            name, description=description or None, tags={"mlops.pipeline": name}
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise RegistryError(f"cannot create registered model '{name}': {exc.message}") from exc
    # A retried task (its worker died after MLflow registered the version) finds the version it made.
    earlier = mlflow_client.search_model_versions(f"name='{name}' and run_id='{run_id}'") if run_id else []
    if earlier:
        number = min(int(v.version) for v in earlier)
        log.info("%s version %d already holds run %s: not registering it again", name, number, run_id)
    else:
        try:
            version = mlflow.register_model(model_uri, name, tags=tags)
        except MlflowException as exc:
            raise RegistryError(
                f"cannot register {model_uri} as a version of '{name}': {exc.message}"
            ) from exc
        number = int(version.version)
    record_digest(name, number, run_id)
    _copy_fingerprint(mlflow_client, name, number, run_id)
    mlflow_client.set_registered_model_alias(name, CHALLENGER, number)
    log.info("Registered %s as %s version %d (alias %s)", model_uri, name, number, CHALLENGER)
    return number


def _copy_fingerprint(mlflow_client: Any, name: str, number: int, run_id: str) -> None:
    """The training run's fingerprint of its inputs onto the version, where the next run looks it up with one
    search (:func:`mlops.services.training.find_same_inputs`), whoever registered it."""
    from mlops.ml.training import FINGERPRINT_TAG

    if not run_id:
        return
    fingerprint = mlflow_client.get_run(run_id).data.tags.get(FINGERPRINT_TAG)
    if fingerprint:
        mlflow_client.set_model_version_tag(name, str(number), FINGERPRINT_TAG, fingerprint)


def alias_version(name: str, alias: str) -> int | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return int(client().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise RegistryError(f"cannot read alias '{alias}' of '{name}': {exc.message}") from exc


def get_version(name: str, version: int) -> Any:
    return client().get_model_version(name, str(version))


def set_version_tags(name: str, version: int, tags: dict[str, Any]) -> None:
    mlflow_client = client()
    for key, value in tags.items():
        # Model version tag values are capped at 5000 characters by the stores.
        mlflow_client.set_model_version_tag(name, str(version), key, str(value)[:5000])


def record_audit(name: str, version: int, event: str, details: dict[str, Any]) -> dict[str, Any]:
    """Append an audit entry (who, what, when, why) to a model version, as a timestamped JSON tag."""
    now = datetime.now(UTC)
    entry = {
        "event": event,
        "at": now.isoformat(timespec="milliseconds"),
        "by": details.get("by") or os.environ.get("USER") or "airflow",
        **{k: v for k, v in details.items() if k != "by"},
    }
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")  # tag keys allow no '+'; sorts chronologically
    set_version_tags(name, version, {f"{AUDIT_PREFIX}{stamp}.{event}": json.dumps(entry, sort_keys=True)})
    return entry


def audit_trail(name: str, version: int) -> list[dict[str, Any]]:
    """Every audit entry on a version, oldest first."""
    tags = get_version(name, version).tags or {}
    return [json.loads(tags[key]) for key in sorted(tags) if key.startswith(AUDIT_PREFIX)]


def promotion_lock(name: str) -> contextlib.AbstractContextManager[None]:
    """Serialise promotions of one model so that compare-and-set cannot interleave (see :func:`named_lock`)."""
    return named_lock(f"promote:{name}", 120)


def training_lock(name: str, fingerprint: str) -> contextlib.AbstractContextManager[None]:
    """Serialise the trainings of one model on the same inputs (the run a person triggers and the run Airflow
    creates when they unpause the DAG, on the same batch): the second finds what the first trained."""
    return named_lock(f"train:{name}:{fingerprint[:16]}", 6 * 3600)


@contextlib.contextmanager
def named_lock(name: str, timeout: float) -> Iterator[None]:
    """A lock shared by every process that may touch the registry, held for the ``with`` block.

    A SQLite or file store is locked with a lock file beside it; a Postgres store with an advisory lock in that
    same database, which every Airflow worker reaches; ``MLOPS_LOCK_URI`` names another Postgres database for
    it (the production stack's MLflow database, behind an MLflow server). Otherwise, for an MLflow server the
    lock is a lock file in MLOPS_HOME, which protects promotions started from one machine only.
    """
    uri = settings.lock_uri()
    parsed = urlparse(uri)
    if parsed.scheme.startswith("postgresql"):
        import zlib

        import sqlalchemy

        engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
        key = zlib.crc32(f"mlops-{name}".encode())
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        engine.dispose()
        return
    from filelock import FileLock

    kind, _, subject = name.partition(":")
    file_name = f"{subject.replace(':', '.')}.{kind}"  # promote:fraud -> fraud.promote.lock
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute.db: the path is what follows the third slash.
        lock_path = Path(unquote(parsed.path).removeprefix("/")).with_suffix(f".{file_name}.lock")
    else:
        lock_dir = settings.mlops_home() / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock_path = lock_dir / f"{file_name}.lock"
    with FileLock(str(lock_path), timeout=timeout):
        yield


def promote(
    name: str, version: int, expected_champion: int | None, *, audit: dict[str, Any]
) -> dict[str, Any]:
    """Move ``champion`` to ``version`` only if it still points at ``expected_champion`` (None: no champion).

    Raises:
        PromotionConflict: the champion moved since the gate compared against it; nothing was changed.
    """
    return move_champion(name, version, expected_champion, event="promoted", audit=audit)


def move_champion(
    name: str, version: int, expected_champion: int | None, *, event: str, audit: dict[str, Any]
) -> dict[str, Any]:
    """Compare-and-set of alias ``champion``, audited on both versions (``event``: promoted, rolled_back_to).

    Raises:
        PromotionConflict: the champion is not ``expected_champion`` any more; nothing was changed.
    """
    with promotion_lock(name):
        current = alias_version(name, CHAMPION)
        if current != expected_champion:
            raise PromotionConflict(
                f"'{name}' version {version} was gated against champion "
                f"{'v' + str(expected_champion) if expected_champion else '(none)'}, but the champion is now "
                f"{'v' + str(current) if current else '(none)'}: not promoting, so that update is not lost. "
                "Run the pipeline again to gate against the current champion."
            )
        client().set_registered_model_alias(name, CHAMPION, version)
        entry = record_audit(name, version, event, {**audit, "from_version": current, "to_version": version})
        set_version_tags(name, version, {"deploy.status": "champion", "deploy.promoted_at": entry["at"]})
        if current is not None and current != version:
            retired = "retired" if event == "promoted" else "rolled_back"
            set_version_tags(name, current, {"deploy.status": retired, "deploy.replaced_by": version})
            record_audit(
                name,
                current,
                retired,
                {"by": entry["by"], "replaced_by": version, "reason": audit.get("reason")},
            )
    log.info("%s: champion v%s -> v%s (%s)", name, current, version, event)
    return entry
