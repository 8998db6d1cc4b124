"""Verified models: the sha256 digest of a version's files, recorded at registration and checked before any
load deserialises them.

Where the digest is trusted: the **registry database**, as the version tag ``mlops.model_digest`` (with the
per-file manifest in ``mlops.model_manifest``). That database already decides what serves (the ``champion``
alias lives there), while the artifacts sit in the weaker domain: S3 with keys shared by every worker and
server, or a local folder. Training records the digest of the files it has just logged on its run; registration
downloads the files again, refuses them when they differ from that, and writes the version tags.

Every loader (the model server, the gate, the smoke test, reproduce, monitoring) goes through
:func:`verified_model_path`: download to a private local folder, hash, compare, and deserialise from that
folder only, never from the remote URI again (its bytes could change in between). A mismatch, or a version
without a digest, is a :class:`ModelIntegrityError` (permanent: a retry reads the same bytes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops.errors import RegistryError
from mlops.ml import tracking
from mlops.ml.serialization import (
    DIGEST_TAG,
    SKOPS,
    folder_manifest,
    manifest_digest,
    untrusted_types_allowed,
)

__all__ = [
    "DIGEST_TAG",
    "MANIFEST_TAG",
    "ModelIntegrityError",
    "load_model_folder",
    "load_verified_model",
    "record_digest",
    "verified_model",
    "verified_model_path",
]

log = logging.getLogger(__name__)

#: Version tag with ``{path: sha256}`` of the files (when it fits a tag): names what changed on a mismatch.
MANIFEST_TAG = "mlops.model_manifest"
_TAG_LIMIT = 5000


class ModelIntegrityError(RegistryError):
    """A model version's files are not the ones registered (or it has no digest): it is not deserialised."""

    code = "MODEL_INTEGRITY"
    permanent = True  # the same bytes fail the same way on every try


def _download(name: str, version: int, dst: Path) -> Path:
    import mlflow

    tracking.client()  # points mlflow at the configured tracking URI
    return Path(
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dst))
    )


def _manifest(name: str, version: int, folder: Path) -> dict[str, str]:
    try:
        return folder_manifest(folder)
    except ValueError as exc:
        raise ModelIntegrityError(f"'{name}' v{version}: refusing its files: {exc}") from exc


def _changes(recorded: dict[str, str], found: dict[str, str]) -> str:
    changed = sorted(p for p in recorded.keys() & found.keys() if recorded[p] != found[p])
    parts = [
        f"{what}: {', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}"
        for what, paths in (
            ("changed", changed),
            ("added", sorted(found.keys() - recorded.keys())),
            ("missing", sorted(recorded.keys() - found.keys())),
        )
        if paths
    ]
    return "; ".join(parts)


def record_digest(name: str, version: int, run_id: str = "") -> str:
    """Hash the files of a new version and record the digest on it (tags ``mlops.model_digest`` and
    ``mlops.model_manifest``); called by :func:`mlops.registry.versions.create_version`.

    The files must match the digest their training run recorded (run tag ``mlops.model_digest``), and a
    version registered before (a retried task) must keep the digest it has. A run without one (a model logged
    outside :func:`mlops.ml.training.train_model`) is trusted as it is now.

    Raises:
        ModelIntegrityError: the files changed since training (or since the version was first registered).
    """
    mlflow_client = tracking.client()
    expected = {
        "the version": (mlflow_client.get_model_version(name, str(version)).tags or {}).get(DIGEST_TAG),
        f"training run {run_id}": mlflow_client.get_run(run_id).data.tags.get(DIGEST_TAG) if run_id else None,
    }
    with tempfile.TemporaryDirectory(prefix="mlops-digest-") as tmp:
        manifest = _manifest(name, version, _download(name, version, Path(tmp)))
    digest = manifest_digest(manifest)
    for source, recorded in expected.items():
        if recorded and recorded != digest:
            raise ModelIntegrityError(
                f"'{name}' v{version}: its files hash to {digest}, but {source} recorded {recorded}: the "
                "artifacts changed after they were written. Not recording a digest, so no loader will accept "
                "this version; retrain and register again, and find out who can write the artifact store."
            )
    if not any(expected.values()):
        log.warning(
            "'%s' v%s: no digest from training; recording the digest of its files as they are now",
            name,
            version,
        )
    tags = {DIGEST_TAG: digest}
    listed = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    if len(listed) <= _TAG_LIMIT:
        tags[MANIFEST_TAG] = listed
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, str(version), key, value)
    log.info("'%s' v%s: model digest %s (%d files)", name, version, digest, len(manifest))
    return digest


def verified_model_path(name: str, version: int, dst: str | Path) -> Path:
    """Download version ``version`` of ``name`` into ``dst`` (a private local folder), check its files against
    the digest recorded at registration, and return the model's folder: the only place to load it from.

    Raises:
        ModelIntegrityError: the version has no digest, or its files do not match it.
    """
    tags = tracking.client().get_model_version(name, str(version)).tags or {}
    recorded = tags.get(DIGEST_TAG)
    if not recorded:
        raise ModelIntegrityError(
            f"'{name}' v{version} has no model digest (version tag {DIGEST_TAG}): it was registered before "
            "digests were recorded, or outside the kit. Refusing to deserialise unverified files; retrain and "
            "register it again (or, after checking its files, record one with "
            "mlops.registry.integrity.record_digest)."
        )
    local = _download(name, version, Path(dst))
    manifest = _manifest(name, version, local)
    found = manifest_digest(manifest)
    if found != recorded:
        try:
            what = _changes(json.loads(tags.get(MANIFEST_TAG) or "{}"), manifest)
        except ValueError:
            what = ""
        raise ModelIntegrityError(
            f"'{name}' v{version}: its files do not match the digest recorded at registration "
            f"(recorded {recorded}, found {found}{'; ' + what if what else ''}). Someone changed the model "
            "in the artifact store: not loading it. Check who can write there; retrain and register again."
        )
    return local


def load_model_folder(folder: Path) -> Any:
    """Deserialise the scikit-learn model of a folder :func:`verified_model_path` returned.

    A skops model is loaded with exactly the trusted types recorded at training (in its ``MLmodel``, which the
    digest covers), and only when each falls under :data:`mlops.ml.serialization.SKOPS_SAFE_MODULES`; a
    cloudpickle model through MLflow's scikit-learn loader, from the same local folder.
    """
    import mlflow
    from mlflow.models import Model

    flavor = Model.load(str(folder)).flavors.get("sklearn") or {}
    if flavor.get("serialization_format") == SKOPS:
        import skops.io

        trusted = list(flavor.get("skops_trusted_types") or [])
        if not untrusted_types_allowed(trusted):
            raise ModelIntegrityError(
                f"the model in {folder.name} asks skops to trust {trusted}: only scikit-learn, NumPy and SciPy "
                "types are ever trusted"
            )
        return skops.io.load(folder / flavor["pickled_model"], trusted=trusted)
    return mlflow.sklearn.load_model(str(folder))


@contextlib.contextmanager
def verified_model(name: str, version: int) -> Iterator[Path]:
    """A verified local copy of a version's files (:func:`verified_model_path`), deleted on exit."""
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        yield verified_model_path(name, version, tmp)


def load_verified_model(name: str, version: int) -> Any:
    """The scikit-learn model of a version, deserialised only after its files matched their digest.

    Raises:
        ModelIntegrityError: the version has no digest, or its files do not match it.
    """
    with verified_model(name, version) as folder:
        return load_model_folder(folder)
