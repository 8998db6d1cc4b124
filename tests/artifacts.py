"""A version's files in the artifact store, and an attacker's edit of them: shared by the verified-model tests.

The tests' artifact store is a local folder, so a version's files can be reached and changed as someone with
write access to the store (S3 keys, a shared disk) could.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


def model_folder(name: str, version: int) -> Path:
    """Where the artifact store keeps a version's files (its logged model's folder)."""
    import mlflow

    from mlops import registry

    source = registry.get_version(name, version).source  # models:/m-...: the logged model
    location = mlflow.get_logged_model(source.removeprefix("models:/")).artifact_location
    return Path(unquote(urlparse(location).path))


def model_file(name: str, version: int) -> Path:
    """The serialised model of a version (``model.skops`` or ``model.pkl``, as its MLmodel says)."""
    from mlflow.models import Model

    folder = model_folder(name, version)
    return folder / Model.load(str(folder)).flavors["sklearn"]["pickled_model"]


@contextlib.contextmanager
def tampered(path: Path) -> Iterator[None]:
    """One byte of ``path`` changed until exit."""
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        yield
    finally:
        path.write_bytes(original)


def three_versions(breast_cancer: Any, bc_files: list[Path]) -> Any:
    """breast_cancer versions 1, 2 and 3 (one batch each), v1 the champion; the config with alias polling
    slowed to an hour (the tests reload by hand). Returns that config."""
    from mlops import registry
    from mlops.data.batches import ingest_batch
    from mlops.ml import training

    config = breast_cancer.model_copy(
        update={"serving": breast_cancer.serving.model_copy(update={"poll_interval_seconds": 3600})}
    )
    for number, path in enumerate(bc_files, start=1):
        result = training.train_model(config, ingest_batch(config, str(path)))
        assert registry.register_version(config.name, result.model_uri, result.run_id, result.tags) == number
    registry.promote(config.name, 1, None, audit={"reason": "first model"})
    return config
