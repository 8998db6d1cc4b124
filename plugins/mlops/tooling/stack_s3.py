"""The native stack's S3 API: moto's server, with its buckets and objects kept as files in a folder.

moto is the S3 emulation the tests already use, but its server keeps everything in memory: after ``mlops stack
down``/``up`` the registry (in Postgres) would name model versions whose artifacts are gone. This wraps moto's own
WSGI application (what ``moto_server`` runs) and writes through to a folder:

- at start, every object of the folder is loaded into moto before the port opens;
- after each request that may change something (``PUT``, ``POST``, ``DELETE``) and succeeded, the buckets are
  compared with the folder and what changed is written (or removed) *before* the answer goes out, so an object
  a client was told is stored survives ``down``, a crash or SIGKILL.

Layout of the folder: ``<bucket>/bucket.json`` (region, account), ``<bucket>/objects/<sha256 of key>.data`` (the
bytes) and ``.json`` (key, metadata, ETag; written last, so it marks a complete object). The latest version of
each key is kept (the stack's buckets are not versioned). Run as ``python -m mlops.tooling.stack_s3 --port 9000
--data DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlops.tooling.stack import StackSettings, postgres_uri, s3_client

log = logging.getLogger(__name__)

_MUTATING = frozenset({"PUT", "POST", "DELETE"})
# (identity of moto's key object, its modification time): every put makes a new object.
Signature = tuple[int, Any]


class PersistentS3:
    """The objects of moto's S3 backends mirrored in ``folder`` (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._written: dict[tuple[str, str], Signature] = {}
        self._buckets: set[str] = set()

    def restore(self) -> int:
        """Load every bucket and complete object of the folder into moto; the number of objects loaded."""
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        self.folder.mkdir(parents=True, exist_ok=True)
        count = 0
        for info_file in sorted(self.folder.glob("*/bucket.json")):
            info = json.loads(info_file.read_text())
            bucket = info_file.parent.name
            backend = s3_backends[info.get("account", DEFAULT_ACCOUNT_ID)][info.get("partition", "aws")]
            backend.create_bucket(bucket, info.get("region", "us-east-1"))
            self._buckets.add(bucket)
            for meta_file in sorted((info_file.parent / "objects").glob("*.json")):
                meta = json.loads(meta_file.read_text())
                data = meta_file.with_suffix(".data")
                if not data.exists():
                    continue
                key = backend.put_object(
                    bucket, meta["key"], data.read_bytes(), etag=meta.get("etag"), disable_notification=True
                )
                key.set_metadata(dict(meta.get("metadata", {})))
                self._written[(bucket, meta["key"])] = _signature(key)
                count += 1
        return count

    def sync(self) -> None:
        """Write what changed in moto since the last sync; remove what was deleted."""
        with self._lock:
            buckets, objects = _current()
            for name, bucket in buckets.items():
                if name not in self._buckets:
                    folder = self.folder / name
                    (folder / "objects").mkdir(parents=True, exist_ok=True)
                    info = {
                        "region": bucket.region_name,
                        "account": bucket.account_id,
                        "partition": bucket.partition,
                    }
                    _write_atomic(folder / "bucket.json", json.dumps(info).encode())
                    self._buckets.add(name)
            for (bucket_name, key_name), key in objects.items():
                if self._written.get((bucket_name, key_name)) != _signature(key):
                    self._write(bucket_name, key_name, key)
            for bucket_name, key_name in set(self._written) - set(objects):
                base = self._object_path(bucket_name, key_name)
                base.with_suffix(".json").unlink(missing_ok=True)
                base.with_suffix(".data").unlink(missing_ok=True)
                del self._written[(bucket_name, key_name)]
            for name in self._buckets - set(buckets):
                shutil.rmtree(self.folder / name, ignore_errors=True)
                self._buckets.discard(name)

    def _object_path(self, bucket: str, key: str) -> Path:
        return self.folder / bucket / "objects" / hashlib.sha256(key.encode()).hexdigest()

    def _write(self, bucket: str, key_name: str, key: Any) -> None:
        base = self._object_path(bucket, key_name)
        _write_atomic(base.with_suffix(".data"), key.value)
        meta = {"key": key_name, "metadata": dict(key.metadata), "etag": key.etag.strip('"')}
        _write_atomic(base.with_suffix(".json"), json.dumps(meta).encode())
        self._written[(bucket, key_name)] = _signature(key)


def _current() -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """moto's buckets by name, and the latest version of each object (no delete markers) by (bucket, key)."""
    from moto.s3.models import FakeKey, s3_backends

    buckets: dict[str, Any] = {}
    objects: dict[tuple[str, str], Any] = {}
    for name, (partition, account) in list(s3_backends.bucket_accounts.items()):
        bucket = s3_backends[account][partition].buckets.get(name)
        if bucket is None:
            continue
        buckets[name] = bucket
        for key_name, key in bucket.keys.items():
            if isinstance(key, FakeKey):
                objects[(name, key_name)] = key
    return buckets, objects


def _signature(key: Any) -> Signature:
    return (id(key), key.last_modified)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def persisting(app: Callable[..., Iterable[bytes]], store: PersistentS3) -> Callable[..., Iterable[bytes]]:
    """WSGI middleware: after a successful request that may change objects, ``store.sync()`` before answering."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status: list[str] = []

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        # Flask (under moto's dispatcher) runs the whole request inside this call; werkzeug sends the status
        # and headers only with the first body bytes, i.e. after the sync.
        result = app(environ, capture)
        if environ.get("REQUEST_METHOD") in _MUTATING and status and status[-1].startswith("2"):
            store.sync()
        return result

    return wsgi


def missing_artifacts(settings: StackSettings, endpoint: str) -> list[str]:
    """The registry's aliased versions (in the MLflow database) whose ``MLmodel`` is not on the S3 API at
    ``endpoint``, one line each; [] for a registry that is complete, empty or not created yet.

    What ``mlops stack up`` checks before it starts MLflow: a registry whose artifacts are gone (objects lost
    with an S3 server that kept them in memory, a deleted ``<home>/s3``) would serve nothing.
    """
    import psycopg
    from botocore.exceptions import ClientError

    uri = postgres_uri(settings, "native", settings.mlflow_db).replace("postgresql+psycopg", "postgresql")
    query = (
        "SELECT a.name, a.alias, v.version, v.storage_location FROM registered_model_aliases a "
        "JOIN model_versions v ON v.name = a.name AND v.version = a.version ORDER BY a.name, a.alias"
    )
    with psycopg.connect(uri, connect_timeout=10) as conn:
        if conn.execute("SELECT to_regclass('registered_model_aliases')").fetchone() in (None, (None,)):
            return []
        aliased = conn.execute(query).fetchall()
    client = s3_client(settings, endpoint)
    missing = []
    for name, alias, version, location in aliased:
        location = str(location or "")
        if location.startswith("mlflow-artifacts:/"):  # proxied artifacts: under --artifacts-destination
            location = (
                f"s3://{settings.artifact_bucket}/{location.removeprefix('mlflow-artifacts:').lstrip('/')}"
            )
        if not location.startswith("s3://"):
            continue
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        try:
            client.head_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/MLmodel")
        except ClientError:
            missing.append(f"{name!r} v{version} (alias {alias}): no {location.rstrip('/')}/MLmodel")
    return missing


def main(argv: list[str] | None = None) -> None:
    """Serve moto's S3 (and the rest of moto) on ``--host:--port``, persisted in ``--data``."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=9000)
    parser.add_argument("--data", required=True, help="folder that keeps the buckets and objects")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    os.umask(0o077)  # the objects (batches, models) and their folders are this user's only
    store = PersistentS3(Path(args.data))
    log.info("loaded %d objects from %s", store.restore(), args.data)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host, args.port, persisting(app, store), threaded=True, request_handler=MotoRequestHandler
    )


if __name__ == "__main__":
    main()
