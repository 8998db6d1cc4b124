"""The training fingerprint: equal inputs, equal fingerprint; data, model config, recipe or code changed, another."""

from __future__ import annotations

from typing import Any

import pytest

from mlops.config import PipelineConfig, parse_config
from mlops.data.batches import Batch
from mlops.ml import training

pytestmark = pytest.mark.unit
CODE = ("0123abc", False)


def _config(**changes: Any) -> PipelineConfig:
    document: dict[str, Any] = {
        "name": "tiny",
        "task": "classification",
        "data": {"source": "landing/{ds}.csv"},
        "target": "label",
        "features": [{"name": "size", "type": "numeric"}, {"name": "colour", "type": "categorical"}],
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5}},
        "gate": {"primary_metric": "roc_auc", "threshold": 0.5},
        **changes,
    }
    return parse_config(document)


def _batch(content_hash: str) -> Batch:
    return Batch(
        pipeline="tiny",
        content_hash=content_hash,
        uri=f"/store/tiny/accepted/{content_hash}.csv",
        format="csv",
        source=f"/landing/{content_hash}.csv",
        size_bytes=10,
        ingested_at="2026-01-01T00:00:00+00:00",
    )


BATCHES = [_batch("a" * 64), _batch("b" * 64)]


def _fingerprint(config: PipelineConfig | None = None, batches: list[Batch] | None = None, code=CODE) -> str:
    return training.training_fingerprint(config or _config(), BATCHES if batches is None else batches, code)


def test_the_same_inputs_give_the_same_fingerprint_a_sha256() -> None:
    first = _fingerprint()

    assert first == _fingerprint(_config(), [_batch("a" * 64), _batch("b" * 64)])
    assert len(first) == 64 and int(first, 16) >= 0
    # The set of batches counts, not the order they are listed in (the data hash sorts them, as lineage does).
    assert first == _fingerprint(batches=list(reversed(BATCHES)))


@pytest.mark.parametrize(
    "batches",
    [[_batch("a" * 64)], [*BATCHES, _batch("c" * 64)], [_batch("a" * 64), _batch("d" * 64)]],
    ids=["a batch fewer (window latest)", "a batch more", "another batch"],
)
def test_other_data_changes_the_fingerprint(batches: list[Batch]) -> None:
    assert _fingerprint(batches=batches) != _fingerprint()


@pytest.mark.parametrize(
    "changes",
    [
        {"target": "size", "features": [{"name": "colour", "type": "categorical"}]},
        {"features": [{"name": "size", "type": "numeric"}]},
        {"features": [{"name": "size", "type": "categorical"}, {"name": "colour", "type": "categorical"}]},
        {"split": {"seed": 8}},
        {"split": {"holdout_fraction": 0.3}},
        {"split": {"stratify": False}},
    ],
    ids=["target", "a feature fewer", "a feature's type", "split seed", "holdout fraction", "stratify"],
)
def test_config_parts_that_shape_the_model_change_the_fingerprint(changes: dict[str, Any]) -> None:
    assert _fingerprint(_config(**changes)) != _fingerprint()


def test_config_parts_that_do_not_shape_the_model_leave_it() -> None:
    unrelated = _config(
        description="another text",
        gate={"primary_metric": "roc_auc", "threshold": 0.9},
        alerts=[{"channel": "slack", "conn_id": "slack_ml"}],
        schedule="@daily",
        tags=["other"],
    )

    assert unrelated.config_hash != _config().config_hash  # the lineage's whole-config hash moves...
    assert _fingerprint(unrelated) == _fingerprint()  # ...the model's inputs do not


@pytest.mark.parametrize(
    "override",
    [
        {"params": {"C": 1.0}},
        {"params": {"C": 0.5, "max_iter": 500}},
        {"estimator": "sklearn.ensemble.RandomForestClassifier"},
    ],
    ids=["a param", "a param more", "another estimator"],
)
def test_a_recipe_override_changes_the_fingerprint(override: dict[str, Any]) -> None:
    changed = training.effective_config(_config(), override)

    assert _fingerprint(changed) != _fingerprint()
    # An override that restates the recipe is the recipe.
    assert _fingerprint(training.effective_config(_config(), {"params": {"C": 0.5}})) == _fingerprint()


def test_the_code_version_changes_the_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlops

    assert _fingerprint(code=("4567def", False)) != _fingerprint()
    assert _fingerprint(code=("0123abc", True)) != _fingerprint()  # uncommitted changes: not that commit
    before = _fingerprint()
    monkeypatch.setattr(mlops, "__version__", "9.9.9")  # a release of the kit
    assert _fingerprint() != before


def test_the_inputs_name_what_the_fingerprint_covers() -> None:
    inputs = training.training_inputs(_config(), BATCHES, *CODE)

    assert set(inputs) == {"data", "config", "recipe", "code"}
    assert inputs["data"] == training.snapshot_hash(BATCHES)
    assert inputs["recipe"] == {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5}}
    assert inputs["code"] == {"package": __import__("mlops").__version__, "commit": "0123abc", "dirty": False}
