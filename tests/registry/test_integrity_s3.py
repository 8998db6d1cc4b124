"""Verified models with the artifacts on S3 (moto's server), as in the production stack: an object overwritten
by anyone holding the shared keys is refused, the registry's digest stands."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops import registry
from mlops.config import PipelineConfig
from mlops.data.batches import ingest_batch
from mlops.ml import training
from mlops.registry import ModelIntegrityError

pytestmark = pytest.mark.service
NAME = "breast_cancer"


def test_an_overwritten_s3_object_is_refused(
    store_home: Path,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    breast_cancer: PipelineConfig,
    bc_files: list[Path],
) -> None:
    import boto3
    import mlflow

    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", f"s3://{s3_bucket}/mlflow")
    result = training.train_model(breast_cancer, ingest_batch(breast_cancer, str(bc_files[0])))
    version = registry.register_version(NAME, result.model_uri, result.run_id, result.tags)
    location = mlflow.get_logged_model(registry.get_version(NAME, version).source.removeprefix("models:/"))
    assert location.artifact_location.startswith(f"s3://{s3_bucket}/")
    key = location.artifact_location.removeprefix(f"s3://{s3_bucket}/") + "/model.skops"
    assert registry.load_verified_model(NAME, version) is not None

    s3 = boto3.client("s3")
    original = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=s3_bucket, Key=key, Body=original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ModelIntegrityError, match=r"do not match the digest .*changed: model\.skops"):
        registry.load_verified_model(NAME, version)
