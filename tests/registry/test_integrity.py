"""Verified models on a real MLflow store: the digest recorded at registration, a tampered or unverified
version refused before it is deserialised, skops with a generated trusted-type list, cloudpickle where skops
cannot hold a pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from artifacts import model_folder, tampered

from mlops import registry
from mlops.config import PipelineConfig
from mlops.data.batches import ingest_batch
from mlops.errors import is_permanent
from mlops.ml import serialization, training
from mlops.registry.integrity import MANIFEST_TAG, ModelIntegrityError, record_digest

pytestmark = pytest.mark.unit
NAME = "breast_cancer"


@pytest.fixture(scope="module")
def trained(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> training.TrainResult:
    """breast_cancer v1, trained and registered the ordinary way."""
    result = training.train_model(breast_cancer, ingest_batch(breast_cancer, str(bc_files[0])))
    assert registry.register_version(NAME, result.model_uri, result.run_id, result.tags) == 1
    return result


def test_registration_records_the_digest_of_every_file(trained: training.TrainResult) -> None:
    tags = registry.get_version(NAME, 1).tags
    run_tags = registry.client().get_run(trained.run_id).data.tags
    folder = model_folder(NAME, 1)

    assert tags[registry.DIGEST_TAG] == run_tags[serialization.DIGEST_TAG]  # what training wrote
    manifest = json.loads(tags[MANIFEST_TAG])
    assert manifest == serialization.folder_manifest(folder)
    assert {"MLmodel", "model.skops", "requirements.txt", "input_example.json"} <= set(manifest)
    assert tags[registry.DIGEST_TAG] == serialization.manifest_digest(manifest)
    assert tags[registry.DIGEST_TAG].startswith("sha256:") and len(tags[registry.DIGEST_TAG]) == 71


def test_the_recipe_is_saved_with_skops_and_exactly_the_types_it_needs(trained: training.TrainResult) -> None:
    from mlflow.models import Model

    flavor = Model.load(str(model_folder(NAME, 1))).flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert flavor["skops_trusted_types"] == ["numpy.dtype"]
    assert registry.get_version(NAME, 1).tags[serialization.FORMAT_TAG] == "skops"
    assert "skops==" in (model_folder(NAME, 1) / "requirements.txt").read_text()


def test_a_verified_model_loads_and_predicts(
    trained: training.TrainResult, breast_cancer: PipelineConfig
) -> None:
    model = registry.load_verified_model(NAME, 1)
    holdout = training.load_holdout(trained.run_id)
    assert training.compute_metrics(breast_cancer, model, holdout) == pytest.approx(trained.metrics)


@pytest.mark.parametrize("file", ["model.skops", "MLmodel", "requirements.txt"])
def test_a_changed_byte_in_any_file_is_refused(trained: training.TrainResult, file: str) -> None:
    with tampered(model_folder(NAME, 1) / file), pytest.raises(ModelIntegrityError) as refused:
        registry.load_verified_model(NAME, 1)
    message = str(refused.value)
    assert "do not match the digest recorded at registration" in message
    assert f"changed: {file}" in message
    assert is_permanent(refused.value)  # the same bytes fail the same way: no retry


def test_an_added_file_is_refused(trained: training.TrainResult) -> None:
    """MLflow puts a model's ``code/`` folder on sys.path: a file dropped there is as bad as a changed one."""
    extra = model_folder(NAME, 1) / "code" / "sitecustomize.py"
    extra.parent.mkdir()
    extra.write_text("raise SystemExit('owned')\n")
    try:
        with pytest.raises(ModelIntegrityError, match="added: code/sitecustomize.py"):
            registry.load_verified_model(NAME, 1)
    finally:
        extra.unlink()
        extra.parent.rmdir()
    assert registry.load_verified_model(NAME, 1) is not None


def test_a_version_without_a_digest_is_refused(trained: training.TrainResult) -> None:
    digest = registry.get_version(NAME, 1).tags[registry.DIGEST_TAG]
    registry.client().delete_model_version_tag(NAME, "1", registry.DIGEST_TAG)
    try:
        with pytest.raises(ModelIntegrityError, match="has no model digest") as refused:
            registry.load_verified_model(NAME, 1)
        assert is_permanent(refused.value)
    finally:
        registry.set_version_tags(NAME, 1, {registry.DIGEST_TAG: digest})


def test_files_changed_between_training_and_registration_are_not_registered(
    trained: training.TrainResult, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    import mlflow

    result = training.train_model(breast_cancer, ingest_batch(breast_cancer, str(bc_files[1])))
    [logged] = mlflow.search_logged_models(
        experiment_ids=[result.experiment_id],
        filter_string=f"source_run_id = '{result.run_id}'",
        output_format="list",
    )
    folder = Path(unquote(urlparse(logged.artifact_location).path))
    challenger = registry.alias_version(NAME, registry.CHALLENGER)
    with tampered(folder / "model.skops"), pytest.raises(ModelIntegrityError, match="artifacts changed"):
        registry.register_version(NAME, result.model_uri, result.run_id, result.tags)
    version = max(int(v.version) for v in registry.client().search_model_versions(f"name='{NAME}'"))
    assert registry.DIGEST_TAG not in registry.get_version(NAME, version).tags  # no loader accepts it
    assert registry.alias_version(NAME, registry.CHALLENGER) == challenger  # not the challenger either
    with pytest.raises(ModelIntegrityError, match="has no model digest"):
        registry.load_verified_model(NAME, version)


def test_a_caller_cannot_set_the_digest_through_the_tags(trained: training.TrainResult) -> None:
    version = registry.register_version(
        NAME, trained.model_uri, "", {registry.DIGEST_TAG: "sha256:" + "0" * 64, MANIFEST_TAG: "{}"}
    )
    tags = registry.get_version(NAME, version).tags
    assert tags[registry.DIGEST_TAG] == registry.get_version(NAME, 1).tags[registry.DIGEST_TAG]
    assert registry.load_verified_model(NAME, version) is not None


def test_a_retried_registration_keeps_the_digest_it_recorded(trained: training.TrainResult) -> None:
    tags = registry.get_version(NAME, 1).tags
    assert record_digest(NAME, 1, trained.run_id) == tags[registry.DIGEST_TAG]
    with tampered(model_folder(NAME, 1) / "MLmodel"), pytest.raises(ModelIntegrityError):
        record_digest(NAME, 1, trained.run_id)
    assert registry.get_version(NAME, 1).tags[registry.DIGEST_TAG] == tags[registry.DIGEST_TAG]


def test_skops_never_trusts_a_type_outside_sklearn_numpy_and_scipy(
    trained: training.TrainResult, tmp_path: Path
) -> None:
    """Even a model folder whose digest was forged too cannot make skops build ``os.system``."""
    import shutil

    import yaml

    folder = tmp_path / "model"
    shutil.copytree(model_folder(NAME, 1), folder)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = ["numpy.dtype", "posix.system"]
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ModelIntegrityError, match="only scikit-learn, NumPy and SciPy types"):
        registry.load_model_folder(folder)


def test_choose_format_by_family(breast_cancer: PipelineConfig) -> None:
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    y = np.arange(20) % 2
    forest = make_pipeline(RandomForestClassifier(n_estimators=3, random_state=0)).fit(x, y)
    assert serialization.choose_format(forest, x) == ("skops", ["sklearn.tree._tree.Tree"])
    custom = make_pipeline(
        FunctionTransformer(lambda frame: frame * 2), RandomForestClassifier(n_estimators=3)
    )
    assert serialization.choose_format(custom.fit(x, y), x) == ("cloudpickle", None)


def test_a_cloudpickle_model_is_verified_and_loaded_from_the_local_copy(
    trained: training.TrainResult, tmp_path: Path
) -> None:
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    path = tmp_path / "pickled"
    mlflow.sklearn.save_model(
        DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]),
        str(path),
        pip_requirements=[],
        serialization_format="cloudpickle",
    )
    version = registry.register_version("tiny_pickled", path.as_uri(), "", {})
    assert registry.load_verified_model("tiny_pickled", version).predict(np.zeros((2, 1))).shape == (2,)
    with tampered(path / "model.pkl"), pytest.raises(ModelIntegrityError, match="changed: model.pkl"):
        registry.load_verified_model("tiny_pickled", version)


def test_the_lineage_and_the_card_show_the_digest_and_the_format(trained: training.TrainResult) -> None:
    from mlops.registry import cards, governance

    digest = registry.get_version(NAME, 1).tags[registry.DIGEST_TAG]
    found = governance.lineage(NAME, 1)
    assert (found["model_digest"], found["model_format"]) == (digest, "skops")
    assert f"skops, {digest}" in cards.build_card(NAME, 1).to_markdown()
