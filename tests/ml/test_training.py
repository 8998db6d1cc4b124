"""Training: preprocessing, deterministic splits, snapshots, metrics, overrides, and one real MLflow run."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops import registry
from mlops.config import PipelineConfig, Training, parse_config
from mlops.data.batches import Batch, accepted_batches, ingest_batch, validate_and_file
from mlops.errors import ConfigError, StorageError, TrainingError
from mlops.ml import training


def _config(task: str = "classification", **changes: Any) -> PipelineConfig:
    document = {
        "name": "tiny",
        "task": task,
        "data": {"source": "landing/{ds}.csv"},
        "target": "label",
        "features": [
            {"name": "size", "type": "numeric", "nullable": True},
            {"name": "colour", "type": "categorical", "nullable": True},
        ],
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"}
        if task == "classification"
        else {"estimator": "sklearn.linear_model.LinearRegression"},
        "gate": {"primary_metric": "roc_auc", "threshold": 0.5}
        if task == "classification"
        else {"primary_metric": "rmse", "threshold": 10},
        **changes,
    }
    return parse_config(document)


# build_pipeline -----------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_build_pipeline_preprocesses_by_feature_type() -> None:
    config = _config()
    frame = pd.DataFrame(
        {
            "size": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            "colour": ["red", "blue", "red", "blue", "green", "blue"],
            "label": [0, 0, 0, 1, 1, 1],
        }
    )
    pipeline = training.build_pipeline(config)
    pipeline.fit(frame[config.feature_names], frame["label"])

    assert list(pipeline.named_steps) == ["preprocess", "model"]
    preprocess = pipeline.named_steps["preprocess"]
    assert [(name, columns) for name, _, columns in preprocess.transformers] == [
        ("numeric", ["size"]),
        ("categorical", ["colour"]),
    ]
    out = preprocess.transform(
        pd.DataFrame({"size": [np.nan, 4.0, 3.0], "colour": ["red", "purple", np.nan]})
    )
    assert out.shape == (3, 1 + 3)  # scaled size + one column per seen colour
    assert out[0, 0] == pytest.approx(out[1, 0])  # a missing size is the median (4.0)
    assert out[1, 1:].tolist() == [0.0, 0.0, 0.0]  # an unseen colour is ignored, not an error
    assert out[2, 1:].tolist() == [1.0, 0.0, 0.0]  # a missing colour is the most frequent one (blue)
    assert pipeline.predict(frame[config.feature_names]).shape == (6,)


@pytest.mark.unit
def test_build_pipeline_numeric_only() -> None:
    config = _config(features=[{"name": "size", "type": "numeric"}])
    preprocess = training.build_pipeline(config).named_steps["preprocess"]
    assert [name for name, _, _ in preprocess.transformers] == ["numeric"]


@pytest.mark.unit
def test_build_pipeline_refuses_an_estimator_that_does_not_suit_the_task() -> None:
    config = _config(model={"estimator": "sklearn.linear_model.Ridge"})
    with pytest.raises(ConfigError, match="not a classifier") as caught:
        training.build_pipeline(config)
    assert caught.value.path == "pipeline 'tiny'"


# effective_config ---------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_effective_config_applies_a_model_override(breast_cancer: PipelineConfig) -> None:
    assert training.effective_config(breast_cancer, None) is breast_cancer
    changed = training.effective_config(
        breast_cancer, {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 5}}
    )
    assert changed.model.estimator == "sklearn.ensemble.RandomForestClassifier"
    assert changed.model.params == {"n_estimators": 5}
    assert changed.config_hash != breast_cancer.config_hash
    assert breast_cancer.model.params["C"] == 0.1  # the original is untouched

    only_params = training.effective_config(breast_cancer, {"params": {"C": 2.0}})
    assert only_params.model.estimator == breast_cancer.model.estimator


@pytest.mark.unit
def test_effective_config_refuses_unknown_keys(breast_cancer: PipelineConfig) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown keys \['learning_rate'\]; allowed: estimator, params"
    ) as caught:
        training.effective_config(breast_cancer, {"learning_rate": 0.1})
    assert caught.value.path == "run conf 'model'"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("override", "field"),
    [({"estimator": "RandomForest"}, "estimator"), ({"params": "C=1"}, "params")],
    ids=["estimator", "params"],
)
def test_effective_config_refuses_bad_values_with_a_config_error(
    breast_cancer: PipelineConfig, override: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        training.effective_config(breast_cancer, override)
    assert caught.value.path == "run conf 'model'"
    assert f"field '{field}'" in str(caught.value)


# compute_metrics ----------------------------------------------------------------------------------------------
@dataclass
class FixedModel:
    """A fitted model whose answers are given: metrics can then be checked against values worked out by hand."""

    predicted: list[Any]
    positive_proba: list[float] | None = None
    classes_: Any = None

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        assert len(x) == len(self.predicted)
        return np.asarray(self.predicted)

    def __getattr__(self, name: str) -> Any:
        if name == "predict_proba" and self.positive_proba is not None:
            proba = np.asarray(self.positive_proba)
            return lambda x: np.column_stack([1 - proba, proba])
        raise AttributeError(name)


def _holdout(labels: list[Any]) -> pd.DataFrame:
    return pd.DataFrame({"size": range(len(labels)), "colour": ["a"] * len(labels), "label": labels})


@pytest.mark.unit
def test_compute_metrics_binary_classification() -> None:
    # Truth 0 0 1 1; scores .1 .6 .8 .55 -> predicted 0 1 1 1 (TP 2, FP 1, FN 0).
    model = FixedModel([0, 1, 1, 1], [0.1, 0.6, 0.8, 0.55], classes_=np.array([0, 1]))
    metrics = training.compute_metrics(_config(), model, _holdout([0, 0, 1, 1]))

    assert metrics == pytest.approx(
        {
            "accuracy": 0.75,
            "precision": 2 / 3,
            "recall": 1.0,
            "f1": 0.8,
            "roc_auc": 0.75,  # 3 of the 4 (positive, negative) pairs ranked right
            "average_precision": 0.5 * 1 + 0.5 * 2 / 3,
            "log_loss": -(math.log(0.9) + math.log(0.4) + math.log(0.8) + math.log(0.55)) / 4,
        }
    )


@pytest.mark.unit
def test_compute_metrics_positive_class_is_the_last_label() -> None:
    model = FixedModel(["no", "yes", "yes", "yes"], [0.1, 0.6, 0.8, 0.55], classes_=np.array(["no", "yes"]))
    metrics = training.compute_metrics(_config(), model, _holdout(["no", "no", "yes", "yes"]))
    assert (metrics["precision"], metrics["recall"]) == pytest.approx((2 / 3, 1.0))


@pytest.mark.unit
def test_compute_metrics_single_class_holdout_has_no_ranking_metrics() -> None:
    model = FixedModel([0, 0, 1], [0.1, 0.2, 0.7], classes_=np.array([0, 1]))
    metrics = training.compute_metrics(_config(), model, _holdout([0, 0, 0]))
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert "roc_auc" not in metrics and "log_loss" not in metrics  # the gate then rejects: not computable


@pytest.mark.unit
def test_compute_metrics_regression() -> None:
    # Truth 1 2 3 0, predicted 2 2 2 1: errors 1 0 -1 1.
    metrics = training.compute_metrics(
        _config("regression"), FixedModel([2.0, 2.0, 2.0, 1.0]), _holdout([1, 2, 3, 0])
    )
    assert metrics == pytest.approx(
        {
            "rmse": math.sqrt(3 / 4),
            "mae": 3 / 4,
            "r2": 1 - 3 / 5,  # residual sum of squares 3, total 5 around the mean 1.5
            "mape": (1 + 0 + 1 / 3) / 3,  # the row with a true 0 is left out
        }
    )


@pytest.mark.unit
def test_compute_metrics_regression_mape_undefined_when_every_truth_is_zero() -> None:
    metrics = training.compute_metrics(_config("regression"), FixedModel([1.0, -1.0]), _holdout([0, 0]))
    assert math.isnan(metrics["mape"])
    assert metrics["mae"] == pytest.approx(1.0)


# A real store: accepted batches, splits, snapshots and one training run ----------------------------------------
@dataclass
class Trained:
    batches: list[Batch]
    result: training.TrainResult
    lineage: dict[str, str]


@pytest.fixture(scope="module")
def trained(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> Trained:
    """Two accepted breast_cancer batches and a model trained on both (window 'all')."""
    accepted = [
        validate_and_file(breast_cancer, ingest_batch(breast_cancer, str(f))).batch for f in bc_files[:2]
    ]
    lineage = {"airflow.dag_id": "breast_cancer_training", "airflow.run_id": "manual__2026-01-02"}
    result = training.train_model(breast_cancer, accepted[1], lineage=lineage)
    return Trained(accepted, result, lineage)


def _rows(frame: pd.DataFrame) -> set[tuple[Any, ...]]:
    return set(frame.itertuples(index=False, name=None))


@pytest.mark.unit
def test_split_is_deterministic_and_disjoint(trained: Trained, breast_cancer: PipelineConfig) -> None:
    train, holdout = training.split_snapshot(breast_cancer, trained.batches)
    train_again, holdout_again = training.split_snapshot(breast_cancer, trained.batches)

    pd.testing.assert_frame_equal(train, train_again)
    pd.testing.assert_frame_equal(holdout, holdout_again)
    assert (len(train), len(holdout)) == (128, 32)  # 20 % of each batch of 80
    assert not _rows(train) & _rows(holdout)
    assert list(holdout.columns) == [*breast_cancer.feature_names, "diagnosis"]
    assert holdout["diagnosis"].nunique() == 2


@pytest.mark.unit
def test_an_earlier_model_never_trained_on_a_later_holdout(
    trained: Trained, breast_cancer: PipelineConfig
) -> None:
    first_train, first_holdout = training.split_snapshot(breast_cancer, trained.batches[:1])
    _, later_holdout = training.split_snapshot(breast_cancer, trained.batches)
    assert _rows(first_holdout) <= _rows(later_holdout)
    assert not _rows(first_train) & _rows(later_holdout)


@pytest.mark.unit
def test_another_seed_gives_another_split(trained: Trained, breast_cancer: PipelineConfig) -> None:
    reseeded = breast_cancer.model_copy(update={"split": breast_cancer.split.model_copy(update={"seed": 7})})
    _, holdout = training.split_snapshot(breast_cancer, trained.batches)
    _, other = training.split_snapshot(reseeded, trained.batches)
    assert _rows(holdout) != _rows(other)


@pytest.mark.unit
def test_split_of_a_batch_that_is_gone(trained: Trained, breast_cancer: PipelineConfig) -> None:
    gone = Batch(**{**trained.batches[0].to_dict(), "uri": trained.batches[0].uri + ".gone"})
    with pytest.raises(StorageError, match=re.escape(gone.uri)):
        training.split_snapshot(breast_cancer, [gone])


@pytest.mark.unit
def test_snapshot_window_all_is_every_batch_up_to_this_one(
    trained: Trained, breast_cancer: PipelineConfig
) -> None:
    first, second = trained.batches
    assert accepted_batches("breast_cancer") == [first, second]
    assert training.snapshot_for(breast_cancer, first) == [first]
    assert training.snapshot_for(breast_cancer, second) == [first, second]


@pytest.mark.unit
def test_snapshot_window_latest_is_only_this_batch(trained: Trained, breast_cancer: PipelineConfig) -> None:
    latest = breast_cancer.model_copy(update={"training": Training(window="latest")})
    assert training.snapshot_for(latest, trained.batches[0]) == [trained.batches[0]]


@pytest.mark.unit
def test_train_model_logs_params_metrics_and_lineage(trained: Trained, breast_cancer: PipelineConfig) -> None:
    result = trained.result
    client = registry.client()  # points mlflow at this module's store
    run = client.get_run(result.run_id)

    assert run.info.status == "FINISHED"
    assert run.info.run_name == "manual__2026-01-02"
    assert client.get_experiment(result.experiment_id).name == "breast_cancer"
    assert run.data.params["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert run.data.params["model.C"] == "0.1"
    assert (run.data.params["train_rows"], run.data.params["holdout_rows"]) == ("128", "32")
    assert run.data.metrics == pytest.approx(result.metrics)
    assert set(result.metrics) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "average_precision",
        "log_loss",
    }
    assert result.metrics["roc_auc"] > 0.9

    tags = run.data.tags
    assert tags["mlops.data_hash"] == result.snapshot_hash == training.snapshot_hash(trained.batches)
    assert tags["mlops.config_hash"] == breast_cancer.config_hash
    assert tags["mlops.code_version"] == training.code_version()[0] != ""
    assert tags["mlops.seed"] == "42"
    assert tags["mlops.batch_hash"] == trained.batches[1].content_hash
    assert tags["mlops.n_batches"] == "2"
    assert {k: tags[k] for k in trained.lineage} == trained.lineage
    assert result.batches == [b.content_hash for b in trained.batches]
    json.dumps(result.to_dict())


@pytest.mark.unit
def test_train_model_logs_snapshot_holdout_config_and_model(
    trained: Trained, breast_cancer: PipelineConfig
) -> None:
    result = trained.result
    client = registry.client()  # points mlflow at this module's store
    artifacts = {
        a.path for folder in ("data", "config") for a in client.list_artifacts(result.run_id, folder)
    }
    assert artifacts >= {"data/snapshot.json", "data/holdout.parquet", "config/breast_cancer.yaml"}

    snapshot = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/snapshot.json"))
    assert snapshot["snapshot_hash"] == result.snapshot_hash
    assert [b["content_hash"] for b in snapshot["batches"]] == result.batches
    logged_config = yaml.safe_load(
        mlflow.artifacts.load_text(f"runs:/{result.run_id}/config/breast_cancer.yaml")
    )
    assert parse_config(logged_config).config_hash == breast_cancer.config_hash

    holdout = training.load_holdout(result.run_id)
    model = mlflow.sklearn.load_model(result.model_uri)
    assert training.compute_metrics(breast_cancer, model, holdout) == pytest.approx(result.metrics)

    info = mlflow.models.get_model_info(result.model_uri)
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs] == breast_cancer.feature_names
    assert info.saved_input_example_info is not None


@pytest.mark.unit
def test_train_model_refuses_a_single_class_training_set(
    store_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    frame = pd.read_csv(bc_files[0])
    benign = store_home / "benign.csv"
    frame[frame["diagnosis"] == 0].to_csv(benign, index=False)
    batch = ingest_batch(breast_cancer, str(benign))

    with pytest.raises(TrainingError, match="single class"):
        training.train_model(breast_cancer, batch)
    assert registry.client().get_experiment_by_name("breast_cancer") is None  # no half-logged run
