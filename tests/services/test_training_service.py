"""No version without news: a training whose inputs equal a registered version's trains nothing and names it
(on a real MLflow store and data store)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops import registry
from mlops.config import PipelineConfig
from mlops.data.batches import Batch, ingest_batch, validate_and_file
from mlops.errors import ConfigError
from mlops.ml.training import FINGERPRINT_TAG, TrainResult
from mlops.services.training import (
    SAME_INPUTS_TAG,
    SameInputs,
    find_same_inputs,
    fingerprint_of,
    train_if_new,
)

pytestmark = pytest.mark.unit
PIPELINE = "breast_cancer"


@dataclass
class Trained:
    config: PipelineConfig
    first: Batch
    second: Batch
    v1: TrainResult


def _accept(config: PipelineConfig, path: Path) -> Batch:
    return validate_and_file(config, ingest_batch(config, str(path))).batch


def _register(result: TrainResult, *, tag: bool = True) -> int:
    """Register as the register task does (the registry copies the run's fingerprint onto the version); without
    ``tag``, a version registered before versions carried it."""
    number = registry.register_version(
        PIPELINE, result.model_uri, result.run_id, {"mlops.run_id": result.run_id}
    )
    assert registry.get_version(PIPELINE, number).tags[FINGERPRINT_TAG] == result.tags[FINGERPRINT_TAG]
    if not tag:
        registry.client().delete_model_version_tag(PIPELINE, str(number), FINGERPRINT_TAG)
    return number


def _runs() -> int:
    client = registry.client()
    experiment = client.get_experiment_by_name(PIPELINE)
    return len(client.search_runs([experiment.experiment_id])) if experiment else 0


@pytest.fixture(scope="module")
def trained(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> Trained:
    """v1 trained and registered (with its fingerprint tag) on the first batch, window 'latest'."""
    config = breast_cancer.model_copy(
        update={"training": breast_cancer.training.model_copy(update={"window": "latest"})}
    )
    first, second = _accept(config, bc_files[0]), _accept(config, bc_files[1])
    v1 = train_if_new(config, first)
    assert isinstance(v1, TrainResult)
    assert _register(v1) == 1
    return Trained(config, first, second, v1)


def test_the_run_and_its_version_carry_the_fingerprint(trained: Trained) -> None:
    fingerprint = trained.v1.tags[FINGERPRINT_TAG]

    assert fingerprint == fingerprint_of(trained.config, trained.first)
    assert registry.client().get_run(trained.v1.run_id).data.tags[FINGERPRINT_TAG] == fingerprint
    assert registry.get_version(PIPELINE, 1).tags[FINGERPRINT_TAG] == fingerprint


def test_same_inputs_train_nothing_and_name_the_version(trained: Trained) -> None:
    runs = _runs()

    outcome = train_if_new(trained.config, trained.first)

    assert isinstance(outcome, SameInputs)
    assert (outcome.version, outcome.run_id) == (1, trained.v1.run_id)
    assert outcome.message == (
        f"same data, config and code as breast_cancer v1 (run {trained.v1.run_id}): nothing new to train; "
        "trigger with force=true to train anyway"
    )
    assert _runs() == runs, "no MLflow run was started"
    assert len(registry.governance.versions(PIPELINE)) == 1


def test_a_drift_request_on_the_same_data_says_so(trained: Trained) -> None:
    outcome = train_if_new(trained.config, trained.first, trigger="drift")

    assert isinstance(outcome, SameInputs)
    assert outcome.message.startswith(
        "retraining requested by monitoring (drift), but the data, config and code"
    )
    assert "breast_cancer v1" in outcome.message and "force=true" in outcome.message
    assert outcome.to_dict()["message"] == outcome.message


@pytest.mark.parametrize(
    ("window", "override"),
    [("all", None), ("latest", {"params": {"C": 0.9}})],
    ids=["other data (window all: both batches)", "another recipe"],
)
def test_other_inputs_train(trained: Trained, window: str, override: dict | None) -> None:
    outcome = train_if_new(trained.config, trained.second, training_window=window, model_override=override)

    assert isinstance(outcome, TrainResult)
    assert outcome.tags[FINGERPRINT_TAG] != trained.v1.tags[FINGERPRINT_TAG]
    assert SAME_INPUTS_TAG not in outcome.tags


def test_force_trains_anyway_and_records_the_version_it_repeats(trained: Trained) -> None:
    outcome = train_if_new(trained.config, trained.first, force=True, lineage={"mlops.trigger": "manual"})

    assert isinstance(outcome, TrainResult)
    assert outcome.tags[FINGERPRINT_TAG] == trained.v1.tags[FINGERPRINT_TAG]
    assert outcome.tags[SAME_INPUTS_TAG] == "1"
    assert registry.client().get_run(outcome.run_id).data.tags[SAME_INPUTS_TAG] == "1"
    assert _register(outcome) == 2
    # Two versions of the same inputs: the champion is named when it is one, else the newest.
    assert find_same_inputs(PIPELINE, outcome.tags[FINGERPRINT_TAG]).version == 2  # type: ignore[union-attr]
    registry.client().set_registered_model_alias(PIPELINE, registry.CHAMPION, 1)
    same = find_same_inputs(PIPELINE, outcome.tags[FINGERPRINT_TAG])
    assert same is not None and (same.version, same.standing) == (1, "the champion")
    assert ", the champion)" in same.message


def test_a_version_registered_without_the_tag_is_found_through_its_run(trained: Trained) -> None:
    result = train_if_new(trained.config, trained.second, model_override={"params": {"C": 0.3}})
    assert isinstance(result, TrainResult)
    number = _register(result, tag=False)
    assert FINGERPRINT_TAG not in registry.get_version(PIPELINE, number).tags

    same = find_same_inputs(PIPELINE, result.tags[FINGERPRINT_TAG])

    assert same is not None and same.version == number
    assert registry.get_version(PIPELINE, number).tags[FINGERPRINT_TAG] == result.tags[FINGERPRINT_TAG]
    # The message says when the version it matches was rejected: training it again would not help.
    registry.set_version_tags(PIPELINE, number, {"gate.verdict": "rejected"})
    rejected = find_same_inputs(PIPELINE, result.tags[FINGERPRINT_TAG])
    assert (
        rejected is not None and f"v{number} (run {result.run_id}, rejected by the gate)" in rejected.message
    )


def test_nothing_matches_in_an_empty_registry(store_home: Path) -> None:
    assert find_same_inputs(PIPELINE, "0" * 64) is None


def test_a_bad_override_fails_before_anything_is_looked_up(trained: Trained) -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        train_if_new(trained.config, trained.first, model_override={"estimater": "x"})


def test_two_runs_on_the_same_inputs_at_once_train_once(trained: Trained) -> None:
    # The run a person triggers and the one Airflow creates when they unpause the DAG, on the same batch.
    from concurrent.futures import ThreadPoolExecutor

    def run(airflow_run_id: str) -> Any:
        return train_if_new(
            trained.config,
            trained.second,
            lineage={"airflow.run_id": airflow_run_id},
            model_override={"params": {"C": 0.7}},
        )

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(run, ["manual__a", "scheduled__b"]))

    assert sorted(type(o).__name__ for o in outcomes) == ["SameInputs", "TrainResult"]
    same = next(o for o in outcomes if isinstance(o, SameInputs))
    result = next(o for o in outcomes if isinstance(o, TrainResult))
    assert same.run_id == result.run_id and same.version is None  # registration still to come
    assert "trained a moment ago" in same.message
    # A retry of the same Airflow run is not stopped by its own earlier try.
    again = train_if_new(
        trained.config,
        trained.second,
        lineage={"airflow.run_id": result.tags["airflow.run_id"]},
        model_override={"params": {"C": 0.7}},
    )
    assert isinstance(again, TrainResult)
