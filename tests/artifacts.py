"""A version's files in the artifact store, and an attacker's edit of them: shared by the verified-model tests.

The tests' artifact store is a local folder, so a version's files can be reached and changed as someone with
write access to the store (S3 keys, a shared disk) could.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
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
