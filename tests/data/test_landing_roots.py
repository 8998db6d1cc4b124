"""Data access by allow-list: a pipeline ingests only under its landing roots, and the store keeps what it copies
private. Traversals, absolute paths, ``file://`` URIs, ``/proc`` and symlinks that lead out are refused before
anything is read; nothing is copied and nothing of the refused file is echoed."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from mlops.config import PipelineConfig
from mlops.data import batches, storage
from mlops.data.batches import ingest_batch, landing_roots, validate_and_file
from mlops.errors import DataAccessError, is_permanent

SECRET = "SECRET-7f3a"  # in every file a test must not read: it may not appear in any message


def _with(config: PipelineConfig, **data: object) -> PipelineConfig:
    return config.model_copy(update={"data": config.data.model_copy(update=data)})


@pytest.fixture
def landing(mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The install's one extra landing root (``MLOPS_DATA_ROOTS``), with an outside folder holding a secret."""
    root = tmp_path / "drop"
    root.mkdir()
    monkeypatch.setenv("MLOPS_DATA_ROOTS", str(root))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(f"token,label\n{SECRET},1\n")
    return root


def _refused(config: PipelineConfig, data_uri: str, home: Path) -> DataAccessError:
    with pytest.raises(DataAccessError) as caught:
        ingest_batch(config, data_uri)
    message = str(caught.value)
    assert "landing roots" in message and "data.landing_roots" in message and "MLOPS_DATA_ROOTS" in message
    assert SECRET not in message and "root:x:" not in message and "SHELL=" not in message
    assert is_permanent(caught.value), "a refused location fails the task without retries"
    assert not (home / "store").exists(), "nothing is copied, not even a folder made"
    return caught.value


@pytest.mark.unit
@pytest.mark.parametrize(
    "data_uri",
    [
        "../" * 30 + "etc/passwd",  # relative to MLOPS_HOME, climbing out
        "/etc/passwd",
        "file:///etc/passwd",
        "file:///etc/shadow",
        "/proc/self/environ",
        "file:///proc/self/environ",
        "file://evil.example/etc/passwd",
    ],
)
def test_locations_outside_the_roots_are_refused(
    breast_cancer: PipelineConfig, landing: Path, mlops_home: Path, data_uri: str
) -> None:
    _refused(breast_cancer, data_uri, mlops_home)


@pytest.mark.unit
@pytest.mark.parametrize(
    "spelling", ["{root}/../outside/secret.csv", "file://{root}/%2e%2e/outside/secret.csv"]
)
def test_a_traversal_out_of_a_root_is_refused(
    breast_cancer: PipelineConfig, landing: Path, mlops_home: Path, spelling: str
) -> None:
    error = _refused(breast_cancer, spelling.format(root=landing), mlops_home)
    assert landing.as_uri() in str(error), "the message lists the roots"


@pytest.mark.unit
def test_symlinks_that_lead_out_are_refused(
    breast_cancer: PipelineConfig, landing: Path, mlops_home: Path
) -> None:
    outside = landing.parent / "outside"
    (landing / "link.csv").symlink_to(outside / "secret.csv")
    (landing / "passwd.csv").symlink_to("/etc/passwd")
    (landing / "folder").symlink_to(outside, target_is_directory=True)

    for name in ("link.csv", "passwd.csv", "folder/secret.csv"):
        _refused(breast_cancer, str(landing / name), mlops_home)


@pytest.mark.unit
def test_a_fifo_inside_a_root_is_refused(
    breast_cancer: PipelineConfig, landing: Path, mlops_home: Path
) -> None:
    os.mkfifo(landing / "pipe.csv")  # reading it would block the worker
    with pytest.raises(DataAccessError, match="not a regular file"):
        ingest_batch(breast_cancer, str(landing / "pipe.csv"))


@pytest.mark.unit
def test_batches_under_a_root_are_ingested_and_links_inside_it_followed(
    breast_cancer: PipelineConfig, landing: Path, bc_files: list[Path]
) -> None:
    shutil.copyfile(bc_files[0], landing / "2026-01-01.csv")
    (landing / "latest.csv").symlink_to(landing / "2026-01-01.csv")

    direct = ingest_batch(breast_cancer, str(landing / "2026-01-01.csv"))
    linked = ingest_batch(breast_cancer, (landing / "latest.csv").as_uri())

    assert direct.uri == linked.uri
    assert linked.source == (landing / "2026-01-01.csv").as_uri(), "the real file is what is read"


@pytest.mark.unit
def test_the_default_roots_keep_the_landing_folder_the_source_and_the_retraining_batches(
    breast_cancer: PipelineConfig, mlops_home: Path, bc_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_DATA_ROOTS")
    retrain = mlops_home / "store" / "breast_cancer" / "retrain"
    assert landing_roots(breast_cancer) == [
        (mlops_home / "landing").as_uri(),
        retrain.as_uri(),
        (mlops_home / "landing" / "breast_cancer").as_uri(),
    ]
    retrain.mkdir(parents=True)
    shutil.copyfile(bc_files[0], retrain / "live-20260101.csv")  # what the monitoring loop writes

    batch = ingest_batch(breast_cancer, str(retrain / "live-20260101.csv"))

    assert batch.source == (retrain / "live-20260101.csv").as_uri()
    with pytest.raises(DataAccessError):
        ingest_batch(breast_cancer, str(bc_files[0]))  # pytest's folder is no root without the setting


@pytest.mark.unit
def test_with_an_s3_store_its_landing_prefix_is_a_root(
    breast_cancer: PipelineConfig, mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_STORE_URI", "s3://mlops-data/store")
    roots = landing_roots(breast_cancer)
    assert roots[1:3] == ["s3://mlops-data/landing", "s3://mlops-data/store/breast_cancer/retrain"]
    assert storage.confined("s3://mlops-data/landing/breast_cancer/2026-01-01.csv", roots)
    with pytest.raises(DataAccessError):
        storage.confined("s3://mlops-data/store/breast_cancer/accepted/x.csv", roots)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("source", "derived"),
    [
        ("/data/fraud/{ds_nodash}.parquet", "file:///data/fraud"),
        ("file:///data/fraud/{ds}/batch.csv", "file:///data/fraud"),
        ("s3://acme/churn/{ds}/subscribers.parquet", "s3://acme/churn"),
        ("/data/fixed.csv", "file:///data"),
        ("{ds}.csv", None),  # straight in MLOPS_HOME: the home is no root
        ("/{ds}.csv", None),  # nor is the top of the disk
    ],
)
def test_the_source_s_folder_before_its_template_is_a_root(
    breast_cancer: PipelineConfig,
    mlops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    derived: str | None,
) -> None:
    monkeypatch.delenv("MLOPS_DATA_ROOTS")
    roots = landing_roots(_with(breast_cancer, source=source))
    assert roots[:2] == [
        (mlops_home / "landing").as_uri(),
        (mlops_home / "store/breast_cancer/retrain").as_uri(),
    ]
    assert roots[2:3] == ([derived] if derived else [])


@pytest.mark.unit
def test_the_config_adds_roots(breast_cancer: PipelineConfig, landing: Path, mlops_home: Path) -> None:
    outside = landing.parent / "outside"
    _refused(breast_cancer, str(outside / "secret.csv"), mlops_home)
    config = _with(breast_cancer, landing_roots=[str(outside)])
    assert ingest_batch(config, str(outside / "secret.csv")).source == (outside / "secret.csv").as_uri()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("s3://acme/landing/fraud/2026-01-01.csv", True),
        ("s3://acme/landing/../private/secret.csv", False),
        ("s3://acme/landing/./x.csv", False),
        ("s3://acme/landingx/x.csv", False),  # a prefix is a folder, not the start of a name
        ("s3://acme/private/secret.csv", False),
        ("s3://other/landing/x.csv", False),
        ("/etc/passwd", False),
        ("gs://acme/landing/x.csv", False),
    ],
)
def test_s3_keys_are_checked_on_their_segments(uri: str, allowed: bool) -> None:
    roots = ["s3://acme/landing/", "s3://whole-bucket"]
    if allowed:
        assert storage.confined(uri, roots) == uri
    else:
        with pytest.raises(DataAccessError):
            storage.confined(uri, roots)
    assert storage.confined("s3://whole-bucket/any/key.csv", roots) == "s3://whole-bucket/any/key.csv"


@pytest.mark.service
def test_an_s3_key_outside_the_allowed_prefix_is_refused(
    breast_cancer: PipelineConfig,
    mlops_home: Path,
    s3_bucket: str,
    bc_files: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_DATA_ROOTS", f"s3://{s3_bucket}/landing/")
    storage.write_text(f"s3://{s3_bucket}/private/secret.csv", f"token,label\n{SECRET},1\n")
    storage.write_bytes(f"s3://{s3_bucket}/landing/ok.csv", bc_files[0].read_bytes())

    for uri in (f"s3://{s3_bucket}/private/secret.csv", f"s3://{s3_bucket}/landing/../private/secret.csv"):
        _refused(breast_cancer, uri, mlops_home)

    batch = ingest_batch(breast_cancer, f"s3://{s3_bucket}/landing/ok.csv")
    assert batch.source == f"s3://{s3_bucket}/landing/ok.csv"


# The store keeps its objects private ------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.unit
def test_stored_batches_and_reports_are_private(
    breast_cancer: PipelineConfig, mlops_home: Path, bc_files: list[Path]
) -> None:
    assert _mode(bc_files[0]) & 0o044, "the source is readable by others"
    batch = ingest_batch(breast_cancer, str(bc_files[0]))
    outcome = validate_and_file(breast_cancer, batch)

    store = mlops_home / "store"
    files = [p for p in store.rglob("*") if p.is_file()]
    folders = [store, *(p for p in store.rglob("*") if p.is_dir())]
    assert len(files) >= 4, files  # the batch, its manifest, the result and the report
    assert {_mode(p) for p in files} == {0o600}, {str(p): oct(_mode(p)) for p in files}
    assert {_mode(p) for p in folders} == {0o700}, {str(p): oct(_mode(p)) for p in folders}
    assert storage.read_bytes(outcome.batch.uri) == bc_files[0].read_bytes()
    assert batches.accepted_batches("breast_cancer") == [outcome.batch]


@pytest.mark.unit
def test_a_failed_copy_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot copy"):
        storage.copy(str(tmp_path / "missing.csv"), str(tmp_path / "store" / "x.csv"))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.service
def test_s3_objects_are_written_without_a_public_grant(s3_bucket: str) -> None:
    import boto3

    storage.write_text(f"s3://{s3_bucket}/store/x/result.json", "{}")
    storage.copy(f"s3://{s3_bucket}/store/x/result.json", f"s3://{s3_bucket}/store/y/result.json")

    for key in ("store/x/result.json", "store/y/result.json"):
        grants = boto3.client("s3").get_object_acl(Bucket=s3_bucket, Key=key)["Grants"]
        assert [g["Permission"] for g in grants] == ["FULL_CONTROL"], grants  # the owner's only
        assert all(g["Grantee"].get("Type") == "CanonicalUser" for g in grants), grants


@pytest.mark.unit
def test_a_relative_source_is_the_landing_folder_beside_the_store_wherever_the_dag_runs(
    breast_cancer: PipelineConfig, mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from mlops.airflow.dag_factory import build_training_dag
    from mlops.config import settings

    day = date(2026, 1, 2)
    # The embedded default: the store is <home>/store, so landing/... is <home>/landing/...
    assert (
        batches.batch_source(breast_cancer, None, day)
        == (mlops_home / "landing" / "breast_cancer" / "2026-01-02.csv").as_uri()
    )
    # The stack: the store is s3://mlops-data/store, so the same relative source is the S3 landing prefix, and
    # the trigger form's default says so.
    monkeypatch.setenv("MLOPS_STORE_URI", "s3://mlops-data/store")
    assert settings.landing_base() == "s3://mlops-data"
    expected = "s3://mlops-data/landing/breast_cancer/2026-01-02.csv"
    assert batches.batch_source(breast_cancer, None, day) == expected
    assert batches.batch_source(breast_cancer, "landing/breast_cancer/2026-01-02.csv") == expected
    form = build_training_dag(breast_cancer).params
    assert form["data_uri"] == "s3://mlops-data/landing/breast_cancer/{ds}.csv"
    # Absolute paths and URIs are taken as they are.
    assert settings.data_location("/data/x.csv") == "/data/x.csv"
    assert settings.data_location("s3://other/x.csv") == "s3://other/x.csv"
