"""How a fitted pipeline is written: its format (skops, or cloudpickle where skops cannot hold it) and the
sha256 manifest of the files of a logged model.

skops rebuilds only the types it is told to trust, so a model file cannot name ``os.system``. The trusted
list is generated at training (:func:`skops.io.get_untrusted_types` on the fitted pipeline), written into the
model's ``MLmodel`` (a file the digest covers) and must fall under :data:`SKOPS_SAFE_MODULES`, a list in the
code that no artifact or registry write can widen. A pipeline that skops cannot write, that needs a type from
another package (a custom transformer, a third-party estimator) or that does not predict the same after a
round trip is written with cloudpickle.

The digest of a model (:func:`folder_manifest`, :func:`manifest_digest`) covers every file of its folder, so
a file added beside the model (a ``code/`` module MLflow would put on ``sys.path``) changes it as much as a
changed byte of ``model.skops``. :mod:`mlops.registry.integrity` records and checks it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SKOPS = "skops"
CLOUDPICKLE = "cloudpickle"
#: Run tags written at training: the format and the digest of the files just logged.
FORMAT_TAG = "mlops.model_format"
DIGEST_TAG = "mlops.model_digest"
DIGEST_PREFIX = "sha256:"
#: Modules whose types a skops model may ask to be trusted; anything else falls back to cloudpickle at
#: training, and is refused at load.
SKOPS_SAFE_MODULES = ("sklearn.", "numpy.", "scipy.")
#: Written by MLflow's client into a ``models:/<name>/<version>`` download; never read from the store.
CLIENT_SIDE_FILES = frozenset({"registered_model_meta"})


def untrusted_types_allowed(types: list[str]) -> bool:
    """Whether every type skops would have to trust comes from scikit-learn, NumPy or SciPy."""
    return all(t.startswith(SKOPS_SAFE_MODULES) for t in types)


def choose_format(model: Any, example: Any) -> tuple[str, list[str] | None]:
    """``(format, trusted types)`` for a fitted pipeline: skops with exactly the types it needs when it can
    hold the pipeline and predicts ``example`` the same after a round trip; otherwise cloudpickle."""
    import numpy as np
    import skops.io

    try:
        data = skops.io.dumps(model)
        trusted = sorted(skops.io.get_untrusted_types(data=data))
        if not untrusted_types_allowed(trusted):
            log.info("Saving with cloudpickle: skops would have to trust %s", trusted)
            return CLOUDPICKLE, None
        rebuilt = skops.io.loads(data, trusted=trusted)
        if not np.array_equal(np.asarray(rebuilt.predict(example)), np.asarray(model.predict(example))):
            log.info("Saving with cloudpickle: the skops round trip predicts differently")
            return CLOUDPICKLE, None
    except Exception as exc:  # a type skops cannot write (a lambda, a custom class without state)
        log.info(
            "Saving with cloudpickle: skops cannot write this pipeline (%s: %s)", type(exc).__name__, exc
        )
        return CLOUDPICKLE, None
    return SKOPS, trusted


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_manifest(folder: str | Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``folder`` (MLflow's client-side files left out).

    Raises:
        ValueError: the folder holds a symbolic link (a store never gives one; it could point anywhere).
    """
    root = Path(folder)
    manifest = {}
    for current, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            if (Path(current) / name).is_symlink():
                raise ValueError(f"{Path(current, name).relative_to(root)} is a symbolic link")
        for name in files:
            path = Path(current) / name
            relative = path.relative_to(root).as_posix()
            if relative not in CLIENT_SIDE_FILES:
                manifest[relative] = file_sha256(path)
    return dict(sorted(manifest.items()))


def manifest_digest(manifest: dict[str, str]) -> str:
    """``sha256:<hex>`` of the manifest as sorted ``<sha256>  <path>`` lines (the format of ``sha256sum``)."""
    text = "".join(f"{manifest[path]}  {path}\n" for path in sorted(manifest))
    return DIGEST_PREFIX + hashlib.sha256(text.encode()).hexdigest()


def logged_model_digest(model_uri: str) -> str:
    """The digest of a model just logged (its files downloaded again and hashed)."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlops-digest-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return manifest_digest(folder_manifest(local))
