"""The life of a batch: content-addressed ingest, validation, acceptance or quarantine; local and on S3."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from mlops.config import ColumnRule, PipelineConfig, settings
from mlops.data import batches, storage
from mlops.data.batches import Batch, accepted_batches, ingest_batch, validate_and_file
from mlops.errors import DataValidationError, StorageError
from mlops_datagen import corrupt_batch
from mlops_datagen.corruption import CORRUPTIONS


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _under(pipeline: str, *parts: str) -> list[str]:
    return storage.list_uris(storage.join(batches.pipeline_root(pipeline), *parts))


# ingest -------------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_ingest_is_content_addressed(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    batch = ingest_batch(breast_cancer, str(bc_files[0]))

    digest = _sha256(bc_files[0])
    assert batch.content_hash == digest
    assert batch.uri == storage.join(settings.store_uri(), "breast_cancer", "incoming", f"{digest}.csv")
    assert storage.read_bytes(batch.uri) == bc_files[0].read_bytes()
    assert batch.source == bc_files[0].resolve().as_uri()
    assert (batch.pipeline, batch.format, batch.size_bytes) == (
        "breast_cancer",
        "csv",
        bc_files[0].stat().st_size,
    )
    assert Batch.from_dict(json.loads(json.dumps(batch.to_dict()))) == batch  # travels through XCom


@pytest.mark.unit
def test_ingest_twice_gives_the_same_uri(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path], tmp_path: Path
) -> None:
    renamed = tmp_path / "renamed.csv"
    shutil.copyfile(bc_files[0], renamed)

    first = ingest_batch(breast_cancer, str(bc_files[0]))
    again = ingest_batch(breast_cancer, str(bc_files[0]))
    same_bytes = ingest_batch(breast_cancer, str(renamed))
    other = ingest_batch(breast_cancer, str(bc_files[1]))

    assert first.uri == again.uri == same_bytes.uri
    assert other.uri != first.uri
    assert len(_under("breast_cancer", "incoming")) == 2


@pytest.mark.unit
def test_ingest_uses_the_configured_source_and_run_date(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    landing = mlops_home / "landing" / "breast_cancer"
    landing.mkdir(parents=True)
    shutil.copyfile(bc_files[1], landing / "2026-02-03.csv")

    batch = ingest_batch(breast_cancer, None, date(2026, 2, 3))

    assert batch.source == (landing / "2026-02-03.csv").resolve().as_uri()
    assert batch.content_hash == _sha256(bc_files[1])


@pytest.mark.unit
def test_ingest_of_a_missing_source_names_it(mlops_home: Path, breast_cancer: PipelineConfig) -> None:
    with pytest.raises(StorageError, match="no batch there") as caught:
        ingest_batch(breast_cancer, None, date(2026, 2, 4))
    assert str(mlops_home / "landing" / "breast_cancer" / "2026-02-04.csv") in str(caught.value)
    assert "breast_cancer" in str(caught.value)
    assert _under("breast_cancer", "incoming") == []


@pytest.mark.unit
def test_source_is_never_modified_or_deleted(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path], tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    shutil.copyfile(bc_files[0], good)
    corrupt_batch(bc_files[1], bad, "out_of_range")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (good, bad)}

    validate_and_file(breast_cancer, ingest_batch(breast_cancer, str(good)))
    with pytest.raises(DataValidationError):
        validate_and_file(breast_cancer, ingest_batch(breast_cancer, str(bad)))

    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (good, bad)} == before


# validate_and_file --------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_a_good_batch_is_accepted(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    batch = ingest_batch(breast_cancer, str(bc_files[0]))

    outcome = validate_and_file(breast_cancer, batch)

    accepted = storage.join(batches.pipeline_root("breast_cancer"), "accepted", f"{batch.content_hash}.csv")
    assert outcome.success and outcome.quarantine_uri is None
    assert "expectations passed on 80 rows" in outcome.summary
    assert outcome.batch.uri == accepted and outcome.batch.rows == 80
    assert storage.read_bytes(accepted) == bc_files[0].read_bytes()
    manifest = json.loads(storage.read_text(accepted.removesuffix(".csv") + ".json"))
    assert manifest == outcome.batch.to_dict()
    assert json.loads(storage.read_text(outcome.result_uri))["success"] is True
    assert "<html" in storage.read_text(outcome.report_uri).lower()
    assert _under("breast_cancer", "incoming") == []
    assert _under("breast_cancer", "quarantine") == []
    json.dumps(outcome.to_dict())  # JSON-able for XCom


@pytest.mark.unit
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_bad_batch_is_quarantined(
    kind: str, mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path], tmp_path: Path
) -> None:
    broken = corrupt_batch(bc_files[0], tmp_path / f"{kind}.csv", kind, column="mean_radius")
    batch = ingest_batch(breast_cancer, str(broken))

    with pytest.raises(DataValidationError) as caught:
        validate_and_file(breast_cancer, batch)

    error = caught.value
    quarantine = storage.join(batches.pipeline_root("breast_cancer"), "quarantine", batch.content_hash)
    assert error.quarantine_uri == quarantine
    assert error.failed, "the failed expectations are listed"
    assert batch.source in error.summary and quarantine in error.summary
    if kind in ("empty", "unparseable"):
        assert "could not be read" in error.summary
    else:
        assert "mean_radius" in error.summary
    assert sorted(uri.rsplit("/", 1)[1] for uri in storage.list_uris(quarantine)) == sorted(
        ["batch.json", "report.html", "result.json", f"{batch.content_hash}.csv"]
    )
    assert storage.read_bytes(storage.join(quarantine, f"{batch.content_hash}.csv")) == broken.read_bytes()
    assert json.loads(storage.read_text(storage.join(quarantine, "result.json")))["success"] is False
    assert (
        json.loads(storage.read_text(storage.join(quarantine, "batch.json")))["content_hash"]
        == batch.content_hash
    )
    assert _under("breast_cancer", "incoming") == []
    assert _under("breast_cancer", "accepted") == []
    assert accepted_batches("breast_cancer") == []


@pytest.mark.unit
def test_two_runs_that_ingested_the_same_bytes_both_validate(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path], tmp_path: Path
) -> None:
    # The run a person triggers and the run unpausing created, on the same batch: both ingest the same
    # content-addressed incoming/ file before either validates.
    mine, theirs = (
        ingest_batch(breast_cancer, str(bc_files[0])),
        ingest_batch(breast_cancer, str(bc_files[0])),
    )
    assert mine.uri == theirs.uri and "/incoming/" in mine.uri
    first = validate_and_file(breast_cancer, theirs)

    second = validate_and_file(breast_cancer, mine)  # was: StorageError NoSuchKey, three tries, a failed run

    assert second.success and second.batch.uri == first.batch.uri and "/accepted/" in second.batch.uri
    assert second.batch.rows == 80 and _under("breast_cancer", "incoming") == []
    assert len(accepted_batches("breast_cancer")) == 1

    # A bad batch: the second run fails as the first did, permanently, pointing at the first's result.
    broken = corrupt_batch(bc_files[0], tmp_path / "nulls.csv", "nulls", column="mean_radius")
    bad_mine, bad_theirs = ingest_batch(breast_cancer, str(broken)), ingest_batch(breast_cancer, str(broken))
    with pytest.raises(DataValidationError):
        validate_and_file(breast_cancer, bad_theirs)
    with pytest.raises(DataValidationError, match="quarantined by another run of 'breast_cancer'"):
        validate_and_file(breast_cancer, bad_mine)


# accepted_batches ---------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_accepted_batches_oldest_first(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    accepted = [validate_and_file(breast_cancer, ingest_batch(breast_cancer, str(f))).batch for f in bc_files]

    assert [b.content_hash for b in accepted_batches("breast_cancer")] == [b.content_hash for b in accepted]

    # Delivering the first batch again keeps its place in the history.
    again = validate_and_file(breast_cancer, ingest_batch(breast_cancer, str(bc_files[0])))
    assert again.batch.uri == accepted[0].uri
    assert again.batch.ingested_at == accepted[0].ingested_at
    assert accepted_batches("breast_cancer") == accepted


@pytest.mark.unit
def test_batches_ingested_within_one_second_keep_their_order(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    ingested = [ingest_batch(breast_cancer, str(f)) for f in reversed(bc_files)]  # all within milliseconds
    assert len({b.ingested_at for b in ingested}) == len(ingested), "ingestion times must tell batches apart"
    for batch in ingested:
        validate_and_file(breast_cancer, batch)

    assert [b.content_hash for b in accepted_batches("breast_cancer")] == [b.content_hash for b in ingested]


@pytest.mark.unit
def test_accepted_batches_of_an_unknown_pipeline(mlops_home: Path) -> None:
    assert accepted_batches("never_ran") == []


# The same life on S3 ------------------------------------------------------------------------------------------
@pytest.fixture
def s3_store(mlops_home: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLOPS_STORE_URI", f"s3://{s3_bucket}/store/")
    return f"s3://{s3_bucket}/store"


@pytest.mark.service
def test_s3_store_accepts_a_good_batch(
    s3_store: str, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    batch = ingest_batch(breast_cancer, str(bc_files[0]))
    assert batch.uri == f"{s3_store}/breast_cancer/incoming/{batch.content_hash}.csv"

    outcome = validate_and_file(breast_cancer, batch)

    assert outcome.batch.uri == f"{s3_store}/breast_cancer/accepted/{batch.content_hash}.csv"
    assert storage.read_bytes(outcome.batch.uri) == bc_files[0].read_bytes()
    assert outcome.result_uri.startswith(f"{s3_store}/breast_cancer/validation/")
    assert _under("breast_cancer", "incoming") == []
    assert accepted_batches("breast_cancer") == [outcome.batch]
    assert ingest_batch(breast_cancer, str(bc_files[0])).uri == outcome.batch.uri  # known batch: no new copy


@pytest.mark.service
def test_s3_store_quarantines_a_bad_batch(
    s3_store: str, breast_cancer: PipelineConfig, bc_files: list[Path], tmp_path: Path
) -> None:
    broken = corrupt_batch(bc_files[0], tmp_path / "nulls.csv", "nulls", column="mean_radius")
    batch = ingest_batch(breast_cancer, str(broken))

    with pytest.raises(DataValidationError, match="mean_radius") as caught:
        validate_and_file(breast_cancer, batch)

    quarantine = f"{s3_store}/breast_cancer/quarantine/{batch.content_hash}"
    assert caught.value.quarantine_uri == quarantine
    assert storage.list_uris(quarantine) == sorted(
        f"{quarantine}/{name}"
        for name in ("batch.json", "report.html", "result.json", f"{batch.content_hash}.csv")
    )
    assert _under("breast_cancer", "incoming") == []
    assert accepted_batches("breast_cancer") == []


# The baseline of a pipeline without expectations --------------------------------------------------------------
def _minimal(mode: str = "warn") -> PipelineConfig:
    from mlops.config import parse_config

    return parse_config(
        {
            "name": "minimal",
            "task": "classification",
            "data": {"source": "landing/{ds}.csv"},
            "target": "label",
            "features": [{"name": "size", "type": "numeric"}, {"name": "grade", "type": "categorical"}],
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "gate": {"primary_metric": "accuracy", "threshold": 0.5},
            "expectations": {"baseline": mode},
        }
    )


def _minimal_batch(
    path: Path, rows: int = 120, size_shift: float = 0.0, grades: tuple = (0, 1, 2, 3, 4)
) -> Path:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rows)
    frame = pd.DataFrame(
        {
            "size": rng.uniform(10, 20, rows) + size_shift,
            "grade": rng.choice(grades, rows),
            "label": rng.integers(0, 2, rows),
        }
    )
    frame.to_csv(path, index=False)
    return path


@pytest.mark.unit
def test_the_first_accepted_batch_of_a_minimal_config_becomes_its_baseline(
    mlops_home: Path, tmp_path: Path
) -> None:
    from mlops.data.baseline import load_baseline

    config = _minimal()
    first = validate_and_file(config, ingest_batch(config, str(_minimal_batch(tmp_path / "first.csv"))))

    recorded = load_baseline("minimal")
    assert first.success and first.batch.warnings == []
    assert recorded is not None and recorded.batch == first.batch.content_hash
    assert recorded.categorical["grade"] == ["0", "1", "2", "3", "4"]

    # Every value far out of range, codes never seen: accepted with warnings (warn mode), baseline unchanged.
    odd = _minimal_batch(tmp_path / "odd.csv", size_shift=1000, grades=(7, 8))
    outcome = validate_and_file(config, ingest_batch(config, str(odd)))

    assert outcome.success and outcome.summary.startswith("Passed with 2 warnings")
    assert [w.split(":")[0] for w in outcome.batch.warnings] == ["size", "grade"]
    assert "120 rows outside" in outcome.batch.warnings[0]
    manifest = json.loads(storage.read_text(outcome.batch.uri.rsplit(".", 1)[0] + ".json"))
    assert manifest["warnings"] == outcome.batch.warnings
    result = json.loads(storage.read_text(outcome.result_uri))
    assert [w["column"] for w in result["warnings"]] == ["size", "grade"]
    assert load_baseline("minimal") == recorded
    assert [b.content_hash for b in accepted_batches("minimal")][0] == first.batch.content_hash

    # Three rows: below the default minimum of 50, quarantined whatever the baseline says.
    with pytest.raises(DataValidationError, match="row count is 3, expected at least 50"):
        validate_and_file(config, ingest_batch(config, str(_minimal_batch(tmp_path / "tiny.csv", rows=3))))


@pytest.mark.unit
def test_fail_mode_quarantines_what_the_baseline_flags(mlops_home: Path, tmp_path: Path) -> None:
    config = _minimal("fail")
    validate_and_file(config, ingest_batch(config, str(_minimal_batch(tmp_path / "first.csv"))))
    odd = _minimal_batch(tmp_path / "odd.csv", size_shift=1000)

    with pytest.raises(DataValidationError, match=r"1 of \d+ expectations failed on 120 rows") as caught:
        validate_and_file(config, ingest_batch(config, str(odd)))

    assert caught.value.quarantine_uri is not None and storage.exists(caught.value.quarantine_uri)
    assert "size: 120 rows outside" in str(caught.value)


@pytest.mark.unit
def test_no_baseline_from_a_rejected_batch_nor_with_rules_or_off(mlops_home: Path, tmp_path: Path) -> None:
    from mlops.data.baseline import load_baseline

    config = _minimal()
    with pytest.raises(DataValidationError):
        validate_and_file(config, ingest_batch(config, str(_minimal_batch(tmp_path / "tiny.csv", rows=3))))
    assert load_baseline("minimal") is None

    good = str(_minimal_batch(tmp_path / "good.csv"))
    validate_and_file(_minimal("off"), ingest_batch(_minimal("off"), good))
    ruled = config.model_copy(
        update={
            "expectations": config.expectations.model_copy(update={"columns": {"size": ColumnRule(min=0)}})
        }
    )
    validate_and_file(ruled, ingest_batch(ruled, good))
    assert load_baseline("minimal") is None
