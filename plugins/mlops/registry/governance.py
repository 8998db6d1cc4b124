"""Governance of model versions: semantic versions, lineage, and the audit trail of every decision.

Everything here is read from (and written to) the MLflow registry and tracking store: the tags and audit
entries on each version and the lineage tags and artifacts of its training run. Nothing else keeps state, so
``mlops audit`` and the model cards tell the same story as the MLflow UI.

Semantic versions (tag ``mlops.semver`` and the version's description) follow from the version before:

- **major** when the feature set, the target or the model family (the estimator class) changed;
- **minor** for a retrain on new data (or with a changed recipe, same features and family);
- **patch** for a rebuild with the same data and the same config.

Example::

    >>> from mlops import governance
    >>> governance.assign_semver("breast_cancer", 3)      # doctest: +SKIP
    '1.2.0'
    >>> print(governance.render_audit(governance.audit_report("breast_cancer"), "table"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops.config import features_fingerprint, parse_config
from mlops.core.semver import Fingerprint, next_semver, unique_semver
from mlops.ml.serialization import DIGEST_TAG, FORMAT_TAG
from mlops.registry import versions as registry

log = logging.getLogger(__name__)

SEMVER_TAG = "mlops.semver"


SEMVER_KIND_TAG = "mlops.semver_change"


SEMVER_REASON_TAG = "mlops.semver_reason"


COMPARED_AGAINST_TAG = "mlops.compared_against"


AUDIT_FORMATS = ("table", "csv", "json")


#: Audit events that are decisions about serving (shown in their own column of the audit).
PROMOTIONS = ("promoted",)


ROLLBACKS = ("rolled_back_to", "rolled_back")


APPROVALS = ("approved", "approval_rejected", "approval_timed_out")


def fingerprint(run_id: str) -> Fingerprint:
    """A training run's fingerprint, from its lineage tags (or its logged config for older runs)."""
    run = registry.client().get_run(run_id)
    tags = run.data.tags
    features, target = tags.get("mlops.features_hash"), tags.get("mlops.target")
    if not features or not target:
        config = logged_config(run_id, tags.get("mlops.pipeline", ""))
        features, target = features_fingerprint(config), config.target
    return Fingerprint(
        features=features,
        target=target,
        estimator=tags.get("mlops.estimator", ""),
        data_hash=tags.get("mlops.data_hash", ""),
        config_hash=tags.get("mlops.config_hash", ""),
    )


def logged_config(run_id: str, pipeline: str) -> Any:
    """The pipeline config exactly as a training run used it (``config/<name>.yaml`` in its artifacts)."""
    import yaml

    text = load_text(run_id, f"config/{pipeline}.yaml")
    if text is None:
        from mlops.errors import RegistryError

        raise RegistryError(f"run {run_id} has no config/{pipeline}.yaml artifact: not trained by this kit?")
    return parse_config(yaml.safe_load(text), f"runs:/{run_id}/config/{pipeline}.yaml")


def load_text(run_id: str, artifact_path: str) -> str | None:
    """A text artifact of a run, or None when the run has no such artifact."""
    import tempfile
    from pathlib import Path

    from mlflow.exceptions import MlflowException

    folder, _, name = artifact_path.rpartition("/")
    mlflow_client = registry.client()
    try:
        if name not in {Path(a.path).name for a in mlflow_client.list_artifacts(run_id, folder or None)}:
            return None
        with tempfile.TemporaryDirectory(prefix="mlops-") as tmp, _quiet_downloads():
            return Path(mlflow_client.download_artifacts(run_id, artifact_path, tmp)).read_text()
    except (MlflowException, OSError):
        return None


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No MLflow download progress bar for these small reads (a card reads a dozen; the bars flood stderr)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if key in os.environ:
        yield
        return
    os.environ[key] = "false"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def versions(pipeline: str) -> list[Any]:
    """Every version of the pipeline's registered model, oldest first."""
    found = registry.client().search_model_versions(f"name='{pipeline}'")
    return sorted(found, key=lambda v: int(v.version))


def register_version(
    name: str, model_uri: str, run_id: str, tags: dict[str, str], description: str = ""
) -> int:
    """Register ``model_uri`` as a new version of ``name`` (alias ``challenger``) with its semantic version."""
    number = registry.create_version(name, model_uri, run_id, tags, description)
    try:
        assign_semver(name, number)
    except Exception:  # the version exists; a missing semver must not make a retry register another one
        log.exception("%s v%d: no semantic version assigned (mlops audit shows '-')", name, number)
    return number


def assign_semver(pipeline: str, version: int) -> str:
    """Compute, tag (``mlops.semver``) and describe a version's semantic version; earlier versions without
    one get theirs first. Idempotent: a version that has one keeps it."""
    current = registry.get_version(pipeline, version)
    if current.tags.get(SEMVER_TAG):
        return current.tags[SEMVER_TAG]
    known = versions(pipeline)
    earlier = [v for v in known if int(v.version) < version]
    previous = earlier[-1] if earlier else None
    # A new version continues the line of the champion it would replace (a rejected experiment in between
    # does not make the next ordinary retrain "major"); a backfilled older version follows the one before it.
    champion = registry.alias_version(pipeline, registry.CHAMPION)
    if champion is not None and champion < version and all(int(v.version) <= version for v in known):
        previous = next((v for v in earlier if int(v.version) == champion), previous)
    previous_semver = None
    before = None
    if previous is not None:
        previous_semver = previous.tags.get(SEMVER_TAG) or assign_semver(pipeline, int(previous.version))
        before = fingerprint(previous.run_id)
    semver, kind, why = next_semver(previous_semver, before, fingerprint(current.run_id))
    taken = {v.tags.get(SEMVER_TAG) for v in earlier if v.tags.get(SEMVER_TAG)}
    semver = unique_semver(semver, kind, taken)
    against = f" (vs v{previous.version} {previous_semver})" if previous is not None else ""
    registry.set_version_tags(
        pipeline, version, {SEMVER_TAG: semver, SEMVER_KIND_TAG: kind, SEMVER_REASON_TAG: why + against}
    )
    registry.client().update_model_version(
        pipeline, str(version), description=f"{semver} ({kind}): {why}{against}"
    )
    log.info("%s v%s is %s (%s: %s)", pipeline, version, semver, kind, why)
    return semver


def record_compared_against(pipeline: str, version: int, champion: int | None) -> None:
    """Lineage: the champion a version was gated against, on the version and on its training run."""
    value = str(champion) if champion is not None else "none"
    registry.set_version_tags(pipeline, version, {COMPARED_AGAINST_TAG: value})
    registry.client().set_tag(registry.get_version(pipeline, version).run_id, COMPARED_AGAINST_TAG, value)


# Lineage ----------------------------------------------------------------------------------------------------
LINEAGE_TAGS = (
    "mlops.data_hash",
    "mlops.batch_uri",
    "mlops.batch_hash",
    "mlops.n_batches",
    "mlops.training_window",
    "mlops.config_hash",
    "mlops.code_version",
    "mlops.code_dirty",
    "mlops.seed",
    "mlops.estimator_seed",
    "mlops.estimator",
    "mlops.features_hash",
    "mlops.target",
    "airflow.dag_id",
    "airflow.run_id",
    "mlops.trigger_reason",
)


def lineage(pipeline: str, version: int) -> dict[str, Any]:
    """Everything a version was built from: data (batches and hashes), config, code, environment, seeds,
    the Airflow run, and the champion it was compared against."""
    model_version = registry.get_version(pipeline, version)
    run = registry.client().get_run(model_version.run_id)
    tags = run.data.tags
    snapshot = json.loads(load_text(run.info.run_id, "data/snapshot.json") or "{}")
    environment = json.loads(load_text(run.info.run_id, "environment/environment.json") or "{}")
    packages = environment.get("packages", {})
    return {
        "pipeline": pipeline,
        "version": version,
        "semver": model_version.tags.get(SEMVER_TAG),
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "tags": {key: tags[key] for key in LINEAGE_TAGS if key in tags},
        "batches": snapshot.get("batches", []),
        "snapshot_hash": snapshot.get("snapshot_hash"),
        "config_artifact": f"runs:/{run.info.run_id}/config/{pipeline}.yaml",
        "environment": {
            "python": environment.get("python"),
            "platform": environment.get("platform"),
            "key_packages": {
                name: packages[name]
                for name in ("scikit-learn", "numpy", "pandas", "scipy", "mlflow", "apache-airflow")
                if name in packages
            },
            "n_packages": len(packages),
            "artifact": f"runs:/{run.info.run_id}/environment/environment.json",
        },
        "compared_against": model_version.tags.get(COMPARED_AGAINST_TAG)
        or model_version.tags.get("gate.champion_version"),
        # What every loader checks before deserialising (mlops.registry.integrity), and how it was written.
        "model_digest": model_version.tags.get(DIGEST_TAG),
        "model_format": model_version.tags.get(FORMAT_TAG) or tags.get(FORMAT_TAG),
    }


# Audit trail ------------------------------------------------------------------------------------------------
@dataclass
class VersionAudit:
    """One version's record: what it is, what the gate said, who approved, promoted and rolled it back."""

    version: int
    semver: str | None
    registered_at: str
    registered_by: str
    run_id: str
    status: str
    verdict: str | None
    reasons: list[str]
    compared_against: str | None
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def decisions(self, kinds: tuple[str, ...]) -> list[str]:
        """``event by who at when`` for each event of the given kinds."""
        return [
            f"{e['event']} by {e.get('by')} at {e['at'][:19]}" for e in self.events if e["event"] in kinds
        ]


def _status(model_version: Any, aliases: dict[int, list[str]]) -> str:
    number = int(model_version.version)
    tags = model_version.tags
    if "champion" in aliases.get(number, []):
        return "champion"
    if tags.get("deploy.status"):
        return tags["deploy.status"]
    if tags.get("gate.verdict") == "rejected":
        return "rejected"
    if "challenger" in aliases.get(number, []):
        return "challenger"
    return "registered"


def audit_report(pipeline: str) -> list[VersionAudit]:
    """Every version of a pipeline with its verdict, approvals, promotions and rollbacks, oldest first."""
    mlflow_client = registry.client()
    found = versions(pipeline)
    aliases: dict[int, list[str]] = {}
    if found:
        for alias, number in (mlflow_client.get_registered_model(pipeline).aliases or {}).items():
            aliases.setdefault(int(number), []).append(alias)
    records = []
    for model_version in found:
        tags = model_version.tags or {}
        number = int(model_version.version)
        registered_at = datetime.fromtimestamp(model_version.creation_timestamp / 1000, UTC)
        by = (
            tags.get("airflow.dag_id")
            and f"airflow:{tags['airflow.dag_id']}/{tags.get('airflow.run_id', '')}"
        )
        registered = {
            "event": "registered",
            "at": registered_at.isoformat(timespec="milliseconds"),
            "by": by or model_version.user_id or "unknown",
            "semver": tags.get(SEMVER_TAG),
            "reason": tags.get(SEMVER_REASON_TAG),
        }
        reasons = tags.get("gate.reasons")
        records.append(
            VersionAudit(
                version=number,
                semver=tags.get(SEMVER_TAG),
                registered_at=registered["at"],
                registered_by=registered["by"],
                run_id=model_version.run_id,
                status=_status(model_version, aliases),
                verdict=tags.get("gate.verdict"),
                reasons=reasons.split(" | ") if reasons else [],
                compared_against=tags.get(COMPARED_AGAINST_TAG) or tags.get("gate.champion_version"),
                events=[registered, *registry.audit_trail(pipeline, number)],
            )
        )
    return records


def _details(entry: dict[str, Any]) -> str:
    parts = [str(entry["outcome"])] if entry.get("outcome") else []
    if entry.get("to_version") is not None:
        parts.append(f"v{entry.get('from_version') or '-'} -> v{entry['to_version']}")
    if entry.get("replaced_by") is not None:
        parts.append(f"replaced by v{entry['replaced_by']}")
    why = entry.get("reason") or "; ".join(entry.get("reasons") or [])
    if why:
        parts.append(str(why))
    return "  ".join(parts)


AUDIT_COLUMNS = ("version", "semver", "status", "verdict", "event", "at", "by", "details")


def audit_rows(records: list[VersionAudit]) -> list[dict[str, Any]]:
    """One flat row per event (CSV): the version's identity, then the event's who, when and what."""
    rows = []
    for record in records:
        for entry in record.events:
            rows.append(
                {
                    "version": record.version,
                    "semver": record.semver or "",
                    "status": record.status,
                    "verdict": record.verdict or "",
                    "event": entry["event"],
                    "at": entry["at"],
                    "by": entry.get("by") or "",
                    "details": _details(entry),
                }
            )
    return rows


def render_audit(records: list[VersionAudit], fmt: str = "table") -> str:
    """The audit as a readable table, CSV (one row per event) or JSON (one object per version)."""
    if fmt == "json":
        return json.dumps([r.to_dict() for r in records], indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=AUDIT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(audit_rows(records))
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format '{fmt}'; use one of {', '.join(AUDIT_FORMATS)}")
    if not records:
        return "no registered versions"
    lines = []
    for record in records:
        against = (
            f", gated against v{record.compared_against}"
            if record.compared_against not in (None, "none")
            else ""
        )
        lines.append(
            f"v{record.version}  {record.semver or '-':<8} {record.status:<12} gate: {record.verdict or '-'}{against}"
        )
        if record.reasons and record.verdict == "rejected":
            lines.append(f"    why: {'; '.join(record.reasons)}")
        for entry in record.events:
            lines.append(
                f"    {entry['at'][:19]:<20} {entry['event']:<20} {str(entry.get('by') or '-'):<32} {_details(entry)}".rstrip()
            )
    return "\n".join(lines)
