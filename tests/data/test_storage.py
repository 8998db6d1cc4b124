"""Storage by URI: the same operations on local files and on a real S3 API (a moto server), and their errors."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path

import pytest

from mlops.data import storage
from mlops.errors import StorageError


# resolve_uri and join -----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_resolve_uri_fills_in_the_run_date() -> None:
    when = date(2026, 3, 4)
    assert storage.resolve_uri("s3://b/x/{ds}.csv", when) == "s3://b/x/2026-03-04.csv"
    assert (
        storage.resolve_uri("s3://b/x/{ds_nodash}.csv", datetime(2026, 3, 4, 5, 6)) == "s3://b/x/20260304.csv"
    )


@pytest.mark.unit
def test_resolve_uri_without_a_date_leaves_the_placeholder() -> None:
    assert storage.resolve_uri("s3://b/x/{ds}.csv") == "s3://b/x/{ds}.csv"


@pytest.mark.unit
def test_resolve_uri_relative_path_is_under_mlops_home(mlops_home: Path) -> None:
    uri = storage.resolve_uri("landing/{ds}.csv", date(2026, 1, 2))
    assert uri == (mlops_home.resolve() / "landing" / "2026-01-02.csv").as_uri()


@pytest.mark.unit
def test_resolve_uri_absolute_path_and_uris(tmp_path: Path) -> None:
    assert storage.resolve_uri(f"  {tmp_path}/a.csv ") == (tmp_path.resolve() / "a.csv").as_uri()
    assert storage.resolve_uri("s3://bucket/key.csv") == "s3://bucket/key.csv"
    assert storage.resolve_uri("file:///data/a.csv") == "file:///data/a.csv"


@pytest.mark.unit
def test_unsupported_scheme_passes_resolution_but_is_refused_on_use() -> None:
    uri = storage.resolve_uri("gs://bucket/key.csv")
    assert uri == "gs://bucket/key.csv"
    with pytest.raises(StorageError, match=r"gs://bucket/key\.csv: not a supported URI"):
        storage.read_bytes(uri)
    with pytest.raises(StorageError, match="not a supported URI"):
        storage.exists("s3:///no-bucket")


@pytest.mark.unit
def test_join() -> None:
    assert storage.join("s3://b/root/", "/a/", "b.csv") == "s3://b/root/a/b.csv"
    assert storage.join("file:///tmp/x", "y") == "file:///tmp/x/y"


# The same operations on both backends -------------------------------------------------------------------------
# The local variant is a unit test, the S3 one talks to moto's server on 127.0.0.1.
@pytest.fixture(
    params=[pytest.param("file", marks=pytest.mark.unit), pytest.param("s3", marks=pytest.mark.service)]
)
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A base URI on a local folder or in a fresh bucket of the moto server."""
    if request.param == "file":
        return (tmp_path.resolve() / "store").as_uri()
    return f"s3://{request.getfixturevalue('s3_bucket')}/store"


def test_write_read_exists(root: str) -> None:
    uri = storage.join(root, "a", "b.txt")
    assert not storage.exists(uri)
    assert storage.write_text(uri, "héllo") == uri
    assert storage.exists(uri)
    assert storage.read_text(uri) == "héllo"
    assert storage.read_bytes(uri) == "héllo".encode()
    storage.write_bytes(uri, b"second")  # overwrite
    assert storage.read_bytes(uri) == b"second"


def test_read_missing_object_names_the_uri(root: str) -> None:
    uri = storage.join(root, "missing.txt")
    with pytest.raises(StorageError, match="cannot read") as caught:
        storage.read_bytes(uri)
    assert uri in str(caught.value)


def test_copy_and_move(root: str) -> None:
    src = storage.write_bytes(storage.join(root, "src.csv"), b"a,b\n1,2\n")
    copied = storage.copy(src, storage.join(root, "copies", "one.csv"))
    assert storage.read_bytes(copied) == b"a,b\n1,2\n"
    assert storage.exists(src)

    moved = storage.move(src, storage.join(root, "moved", "two.csv"))
    assert storage.read_bytes(moved) == b"a,b\n1,2\n"
    assert not storage.exists(src)


def test_copy_or_move_of_a_missing_object_changes_nothing(root: str) -> None:
    src, dest = storage.join(root, "absent.csv"), storage.join(root, "dest.csv")
    with pytest.raises(StorageError) as caught:
        storage.copy(src, dest)
    assert src in str(caught.value)
    with pytest.raises(StorageError):
        storage.move(src, dest)
    assert not storage.exists(dest)


def test_list_uris(root: str) -> None:
    for key in ("a/x.csv", "a/b/y.csv", "a/z.json", "ab/w.csv"):
        storage.write_text(storage.join(root, key), key)
    assert storage.list_uris(storage.join(root, "a"), ".csv") == [
        storage.join(root, "a/b/y.csv"),
        storage.join(root, "a/x.csv"),
    ]
    assert len(storage.list_uris(storage.join(root, "a"))) == 3  # not the sibling "ab/"


def test_list_uris_of_an_empty_prefix(root: str) -> None:
    assert storage.list_uris(storage.join(root, "nothing-here"), ".csv") == []


def test_content_hash_and_size(root: str) -> None:
    data = b"0123456789" * 1000
    uri = storage.write_bytes(storage.join(root, "data.bin"), data)
    assert storage.content_hash(uri) == hashlib.sha256(data).hexdigest()
    assert storage.size(uri) == len(data)


def test_content_hash_and_size_of_a_missing_object_name_it(root: str) -> None:
    uri = storage.join(root, "gone.bin")
    for operation in (storage.content_hash, storage.size):
        with pytest.raises(StorageError) as caught:
            operation(uri)
        assert uri in str(caught.value)


def test_delete(root: str) -> None:
    uri = storage.write_text(storage.join(root, "doomed.txt"), "x")
    storage.delete(uri)
    assert not storage.exists(uri)
    storage.delete(uri)  # deleting what is gone is not an error: retries stay idempotent


def test_local_file(root: str) -> None:
    uri = storage.write_bytes(storage.join(root, "batch.parquet"), b"PAR1 not really")
    with storage.local_file(uri) as path:
        assert path.read_bytes() == b"PAR1 not really"
        assert path.suffix == ".parquet"
        kept = path
    if root.startswith("s3://"):
        assert not kept.exists()  # the download is temporary
    else:
        assert kept.exists()  # the local file itself, untouched


def test_local_file_of_a_missing_object(root: str) -> None:
    uri = storage.join(root, "absent.csv")
    with pytest.raises(StorageError) as caught, storage.local_file(uri):
        pass
    assert uri in str(caught.value)


# Local specifics ----------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_local_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    storage.write_text(str(tmp_path / "a.txt"), "x")
    storage.copy(str(tmp_path / "a.txt"), str(tmp_path / "b.txt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


@pytest.mark.unit
def test_local_write_under_a_file_fails_naming_the_uri(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("I am a file")
    uri = (tmp_path / "file" / "child.txt").as_uri()
    with pytest.raises(StorageError, match="cannot write") as caught:
        storage.write_text(uri, "x")
    assert uri in str(caught.value)


@pytest.mark.unit
def test_plain_paths_and_file_uris_are_the_same_object(tmp_path: Path) -> None:
    storage.write_text(str(tmp_path / "p.txt"), "same")
    assert storage.read_text((tmp_path / "p.txt").as_uri()) == "same"
    assert storage.exists(str(tmp_path / "p.txt"))


# S3 specifics -------------------------------------------------------------------------------------------------
@pytest.mark.service
def test_copy_between_local_and_s3(tmp_path: Path, s3_bucket: str) -> None:
    local = tmp_path / "batch.csv"
    local.write_bytes(b"x,y\n1,2\n3,4\n")
    up = storage.copy(local.as_uri(), f"s3://{s3_bucket}/in/batch.csv")
    assert storage.content_hash(up) == storage.content_hash(str(local))

    down = storage.copy(up, (tmp_path / "back" / "batch.csv").as_uri())
    assert (tmp_path / "back" / "batch.csv").read_bytes() == local.read_bytes()

    moved = storage.move(down, f"s3://{s3_bucket}/moved/batch.csv")
    assert not (tmp_path / "back" / "batch.csv").exists()
    assert storage.read_bytes(moved) == local.read_bytes()


@pytest.mark.service
def test_missing_bucket_or_key_gives_a_clear_error(s3_bucket: str) -> None:
    missing_key = f"s3://{s3_bucket}/no/such/key.csv"
    with pytest.raises(StorageError, match="NoSuchKey") as caught:
        storage.read_bytes(missing_key)
    assert str(caught.value).startswith(f"{missing_key}: cannot read")

    missing_bucket = "s3://mlops-no-such-bucket/key.csv"
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        storage.read_bytes(missing_bucket)
    assert str(caught.value).startswith(f"{missing_bucket}: cannot read")
    with pytest.raises(StorageError, match="cannot write"):
        storage.write_text(missing_bucket, "x")
    with pytest.raises(StorageError, match="cannot list"):
        storage.list_uris("s3://mlops-no-such-bucket/prefix")
    assert not storage.exists(missing_bucket)
