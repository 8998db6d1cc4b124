"""Read, write and move objects by URI: local paths, ``file://`` and ``s3://`` (boto3).

Every task talks to data through URIs so that two tasks never need to share a disk. The S3 endpoint comes from
boto3's own settings (``AWS_ENDPOINT_URL``, ``AWS_*`` credentials), so MinIO or moto work unchanged.

Local objects are private to the user that writes them: files ``0600``, the folders created for them ``0700``.
S3 objects get no ACL (private to the bucket's owner, S3's default). :func:`confined` checks that a location
lies under a set of roots (the landing roots of a pipeline) before anything of it is read.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlops.config import settings
from mlops.errors import DataAccessError, StorageError

_CHUNK = 1 << 20
_PRIVATE_FILE, _PRIVATE_DIR = 0o600, 0o700


def resolve_uri(uri: str, when: date | datetime | None = None) -> str:
    """Normalise a user-given location into a URI.

    ``{ds}`` / ``{ds_nodash}`` become the run's date; a relative path is taken relative to ``MLOPS_HOME``.

    >>> resolve_uri("s3://bucket/fraud/{ds}.csv", date(2026, 1, 2))
    's3://bucket/fraud/2026-01-02.csv'
    """
    uri = uri.strip()
    if when is not None:
        uri = uri.replace("{ds}", when.strftime("%Y-%m-%d")).replace("{ds_nodash}", when.strftime("%Y%m%d"))
    if "://" in uri:
        return uri
    path = Path(uri).expanduser()
    if not path.is_absolute():
        path = settings.mlops_home() / path
    return path.resolve().as_uri()


def join(base: str, *parts: str) -> str:
    """Join URI path segments with '/'."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    return None


def _s3_parts(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StorageError(f"{uri}: not a supported URI (use a path, file:// or s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")


def confined(uri: str, roots: Sequence[str]) -> str:
    """``uri`` as it will be read, if it lies under one of ``roots``; else :class:`DataAccessError`.

    Nothing at ``uri`` is read. A local path is taken at its real location (``..``, ``%2e%2e`` and symlinks
    resolved, in the path and in each root), so a link inside a root that leads outside is refused, and so is
    anything but a regular file; the result names that real file. An S3 key with ``.`` or ``..`` segments is
    refused (some S3 servers normalise them); the bucket must be a root's and the key under its prefix. The
    message names the roots, never anything of the object.
    """
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file", "s3"):
        raise DataAccessError(f"{uri}: only local paths, file:// and s3:// URIs can be read")
    local = _local_path(uri)
    if local is not None:
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise DataAccessError(f"{uri}: a file:// URI must not name a host")
        real = Path(os.path.realpath(local))
        if not any(
            real.is_relative_to(os.path.realpath(r)) for r in map(_local_path, roots) if r and r.is_absolute()
        ):
            raise DataAccessError(f"{uri}: outside the landing roots")
        if os.path.exists(real) and not os.path.isfile(real):  # (a FIFO would block the reader)
            raise DataAccessError(f"{uri}: not a regular file")
        return real.as_uri()
    try:
        bucket, key = _s3_parts(uri)
    except StorageError as exc:
        raise DataAccessError(str(exc)) from None
    if {".", ".."} & set(key.split("/")):
        raise DataAccessError(f"{uri}: an S3 key with '.' or '..' segments is not read")
    for root in roots:
        if urlparse(root).scheme == "s3" and urlparse(root).netloc == bucket:
            prefix = _s3_parts(root)[1].strip("/")
            if not prefix or key.startswith(f"{prefix}/"):
                return uri
    raise DataAccessError(f"{uri}: outside the landing roots")


def _make_private_dirs(folder: Path) -> None:
    """``mkdir -p`` with each created folder ``0700`` (``Path.mkdir`` gives only the last one its mode)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another task made it meanwhile
            path.mkdir(mode=_PRIVATE_DIR)


def _s3_client() -> Any:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return _cached_s3_client(
        endpoint, os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_DEFAULT_REGION")
    )


@functools.lru_cache(maxsize=8)
def _cached_s3_client(endpoint: str | None, _key_id: str | None, _region: str | None) -> Any:
    """One boto3 client per endpoint and credentials (clients are thread-safe and costly to build)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


def arrow_filesystem(uri: str) -> tuple[Any, str]:
    """A ``pyarrow.fs`` filesystem for ``uri`` and the path inside it (to read with ``pyarrow.dataset``).

    S3 uses the same endpoint and credentials as boto3 here (``AWS_ENDPOINT_URL`` or
    ``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*``).
    """
    import pyarrow.fs as pafs

    local = _local_path(uri)
    if local is not None:
        return pafs.LocalFileSystem(), str(local)
    bucket, key = _s3_parts(uri)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    options: dict[str, Any] = {"region": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        options.update(
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            session_token=os.environ.get("AWS_SESSION_TOKEN"),
        )
    return pafs.S3FileSystem(**options), f"{bucket}/{key}".rstrip("/")


def _s3_error(uri: str, action: str, exc: Exception) -> StorageError:
    return StorageError(f"{uri}: cannot {action} ({type(exc).__name__}: {exc})")


def exists(uri: str) -> bool:
    if (path := _local_path(uri)) is not None:
        return path.exists()
    bucket, key = _s3_parts(uri)
    from botocore.exceptions import ClientError

    try:
        _s3_client().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise _s3_error(uri, "check", exc) from exc
    return True


def read_bytes(uri: str) -> bytes:
    if (path := _local_path(uri)) is not None:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise StorageError(f"{uri}: cannot read ({exc.strerror or exc})") from exc
    bucket, key = _s3_parts(uri)
    try:
        return _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise _s3_error(uri, "read", exc) from exc


def write_bytes(uri: str, data: bytes) -> str:
    """Write atomically (temp file + rename locally; one PUT on S3). Returns the URI."""
    if (path := _local_path(uri)) is not None:
        try:
            _make_private_dirs(path.parent)
            # NamedTemporaryFile creates the file 0600: the object is never readable by others, not even briefly.
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=f".{path.name}.") as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        except OSError as exc:
            raise StorageError(f"{uri}: cannot write ({exc.strerror or exc})") from exc
        return uri
    bucket, key = _s3_parts(uri)
    try:
        _s3_client().put_object(Bucket=bucket, Key=key, Body=data)
    except Exception as exc:
        raise _s3_error(uri, "write", exc) from exc
    return uri


def write_text(uri: str, text: str) -> str:
    return write_bytes(uri, text.encode("utf-8"))


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def copy(src: str, dest: str) -> str:
    """Copy an object between any two supported locations; returns ``dest``."""
    src_path, dest_path = _local_path(src), _local_path(dest)
    if src_path is not None and dest_path is not None:
        partial = None
        try:
            _make_private_dirs(dest_path.parent)
            with (
                src_path.open("rb") as source,
                tempfile.NamedTemporaryFile(
                    dir=dest_path.parent, delete=False, prefix=f".{dest_path.name}."
                ) as tmp,
            ):
                partial = Path(tmp.name)
                shutil.copyfileobj(source, tmp, _CHUNK)  # into a 0600 file, whatever the source's mode
            os.replace(partial, dest_path)
        except OSError as exc:
            if partial is not None:
                partial.unlink(missing_ok=True)
            raise StorageError(f"cannot copy {src} to {dest} ({exc.strerror or exc})") from exc
        return dest
    return write_bytes(dest, read_bytes(src))


def delete(uri: str) -> None:
    if (path := _local_path(uri)) is not None:
        path.unlink(missing_ok=True)
        return
    bucket, key = _s3_parts(uri)
    try:
        _s3_client().delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _s3_error(uri, "delete", exc) from exc


def move(src: str, dest: str) -> str:
    """Copy then delete: the object is never absent from both places."""
    copy(src, dest)
    delete(src)
    return dest


def list_uris(prefix: str, suffix: str = "") -> list[str]:
    """URIs of the objects directly or indirectly under ``prefix`` that end with ``suffix`` (sorted)."""
    if (path := _local_path(prefix)) is not None:
        if not path.is_dir():
            return []
        return sorted(p.resolve().as_uri() for p in path.rglob(f"*{suffix}") if p.is_file())
    bucket, key = _s3_parts(prefix)
    key = key.rstrip("/") + "/" if key else ""
    found: list[str] = []
    try:
        for page in _s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            found += [
                f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", []) if o["Key"].endswith(suffix)
            ]
    except Exception as exc:
        raise _s3_error(prefix, "list", exc) from exc
    return sorted(found)


def size(uri: str) -> int:
    """Size of an object in bytes."""
    if (path := _local_path(uri)) is not None:
        try:
            return path.stat().st_size
        except OSError as exc:
            raise StorageError(f"{uri}: cannot read ({exc.strerror or exc})") from exc
    bucket, key = _s3_parts(uri)
    try:
        return int(_s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    except Exception as exc:
        raise _s3_error(uri, "read", exc) from exc


def content_hash(uri: str) -> str:
    """SHA-256 of an object's bytes (the identity of a batch)."""
    digest = hashlib.sha256()
    if (path := _local_path(uri)) is not None:
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise StorageError(f"{uri}: cannot read ({exc.strerror or exc})") from exc
        return digest.hexdigest()
    digest.update(read_bytes(uri))
    return digest.hexdigest()


@contextlib.contextmanager
def local_file(uri: str) -> Iterator[Path]:
    """A local path holding the object: the file itself, or a temporary download of an S3 object."""
    if (path := _local_path(uri)) is not None:
        if not path.exists():
            raise StorageError(f"{uri}: no such file")
        yield path
        return
    suffix = "".join(Path(urlparse(uri).path).suffixes[-1:])
    with tempfile.TemporaryDirectory(prefix="mlops-") as tmp:
        local = Path(tmp) / f"object{suffix}"
        local.write_bytes(read_bytes(uri))
        yield local
