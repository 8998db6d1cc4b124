"""mlops reproduce on a real MLflow store: identical rebuilds, changed data caught before training, and
differences explained (package versions, an unseeded estimator)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mlops import registry
from mlops.config import PipelineConfig
from mlops.data import storage
from mlops.data.batches import ingest_batch, validate_and_file
from mlops.ml import training
from mlops.registry import cards, governance
from mlops.services.reproduce import (
    DIFFERENT,
    IDENTICAL,
    check_batches,
    environment_differences,
    reproduce,
)
from mlops.tooling.cli import main

pytestmark = pytest.mark.unit
PIPELINE = "breast_cancer"
UNSEEDED_FOREST = {
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": 10, "random_state": None, "n_jobs": 1},
}


@dataclass
class Built:
    config: PipelineConfig
    batch_path: Path  # the accepted copy in the data store that v1 and v2 learnt from


@pytest.fixture(scope="module")
def built(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> Built:
    """v1: the recipe (seeded LogisticRegression); v2: an unseeded random forest; both on one batch."""
    batch = validate_and_file(breast_cancer, ingest_batch(breast_cancer, str(bc_files[0]))).batch
    for number, override in ((1, None), (2, UNSEEDED_FOREST)):
        result = training.train_model(breast_cancer, batch, model_override=override)
        assert registry.register_version(PIPELINE, result.model_uri, result.run_id, result.tags) == number
    return Built(breast_cancer, Path(urlparse(batch.uri).path))


def _rewrite_environment(version: int, **packages: str) -> None:
    """Pretend the version was trained with other package versions (its environment record says so)."""
    run_id = registry.get_version(PIPELINE, version).run_id
    environment = json.loads(governance.load_text(run_id, training.ENVIRONMENT_ARTIFACT))
    environment["packages"].update(packages)
    registry.client().log_text(run_id, json.dumps(environment), training.ENVIRONMENT_ARTIFACT)


def test_a_deterministic_estimator_reproduces_identically(built: Built) -> None:
    result = reproduce(PIPELINE, 1)

    assert result.outcome == IDENTICAL and result.trained, result.summary()
    assert result.causes == [] and result.environment == []
    assert result.predictions["label_mismatches"] == 0 and result.predictions["max_abs_diff"] == 0.0
    assert all(v["diff"] == 0.0 for v in result.metrics.values())
    assert [d["status"] for d in result.data] == ["ok"]
    run = registry.client().get_run(result.run_id)
    assert run.data.tags["mlops.reproduction_of"] == "1"
    assert run.data.tags["mlops.reproduction.outcome"] == IDENTICAL
    assert run.info.run_id != registry.get_version(PIPELINE, 1).run_id
    entry = [e for e in registry.audit_trail(PIPELINE, 1) if e["event"] == "reproduced"][-1]
    assert (entry["outcome"], entry["run_id"], entry["by"]) == (IDENTICAL, result.run_id, "cli")
    report = json.loads(governance.load_text(result.run_id, "reproduction/report.json"))
    assert report["outcome"] == IDENTICAL
    card = cards.build_card(PIPELINE, 1).to_markdown()
    assert "| **Last reproduction** | identical (" in card and result.run_id in card
    assert "reproduced" not in [e["event"] for e in cards.build_card(PIPELINE, 1).deployment]


def test_a_changed_package_version_is_detected(built: Built) -> None:
    now = training.environment()["packages"]["scikit-learn"]
    _rewrite_environment(1, **{"scikit-learn": "1.8.0"})

    result = reproduce(PIPELINE, 1)

    assert result.environment[0] == {"package": "scikit-learn", "original": "1.8.0", "now": now}
    assert result.outcome == IDENTICAL  # the model does not depend on what changed here...
    assert result.notes == [
        f"package versions differ: scikit-learn 1.8.0 -> {now}, yet the rebuild is identical"
    ]


def test_a_different_rebuild_names_the_package_versions_and_the_missing_seed(built: Built) -> None:
    _rewrite_environment(2, **{"scikit-learn": "1.8.0", "numpy": "1.26.4"})

    result = reproduce(PIPELINE, 2)

    assert result.outcome == DIFFERENT and result.trained, result.summary()
    assert result.predictions["max_abs_diff"] > 0
    assert result.causes[0].startswith("package versions differ: scikit-learn 1.8.0 -> ")
    assert "numpy 1.26.4 -> " in result.causes[0]
    assert result.causes[-1] == (
        "non-deterministic estimator: sklearn.ensemble.RandomForestClassifier has no random_state"
    )
    assert (
        registry.client().get_run(registry.get_version(PIPELINE, 2).run_id).data.tags["mlops.estimator_seed"]
        == "none"
    )


def test_changed_data_is_caught_by_its_hash_before_training(built: Built) -> None:
    original = built.batch_path.read_bytes()
    expected = [b["content_hash"] for b in governance.lineage(PIPELINE, 1)["batches"]][0]
    try:
        built.batch_path.write_bytes(original.replace(b"\n1", b"\n0", 1))
        result = reproduce(PIPELINE, 1)
    finally:
        built.batch_path.write_bytes(original)

    assert result.outcome == DIFFERENT and not result.trained
    assert result.data[0]["status"] == "changed"
    assert result.causes[0].startswith(f"data changed: batch {expected[:12]} at {built.batch_path.as_uri()}")
    assert "now hashes to" in result.causes[0]
    assert "nothing was trained" in result.notes[-1]
    run = registry.client().get_run(result.run_id)
    assert run.data.metrics == {}, "no model was trained"
    assert run.data.tags["mlops.reproduction.outcome"] == DIFFERENT


def test_missing_data_is_named(built: Built) -> None:
    moved = built.batch_path.with_suffix(".away")
    built.batch_path.rename(moved)
    try:
        result = reproduce(PIPELINE, 1)
    finally:
        moved.rename(built.batch_path)
    assert result.outcome == DIFFERENT and not result.trained
    assert result.causes[0].startswith("data missing: batch ")


def test_reproduce_on_the_command_line(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", PIPELINE, "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{PIPELINE} v1: IDENTICAL (reproduction run ")
    assert main(["reproduce", PIPELINE, "2", "--json"]) == 1  # different: a non-zero exit for scripts
    assert json.loads(capsys.readouterr().out)["outcome"] == DIFFERENT
    assert main(["reproduce", PIPELINE, "9"]) == 1
    assert "cannot reproduce breast_cancer v9: 'breast_cancer' has no version 9" in capsys.readouterr().out


# Pure helpers ---------------------------------------------------------------------------------------------------
def test_environment_differences_put_what_matters_first() -> None:
    original = {
        "python": "3.11.7",
        "packages": {"zipp": "1", "numpy": "2.0", "scikit-learn": "1.8.0", "gone": "1"},
    }
    now = {"python": "3.12.1", "packages": {"zipp": "2", "numpy": "2.0", "scikit-learn": "1.9.1", "new": "1"}}
    assert [d["package"] for d in environment_differences(original, now)] == [
        "python", "scikit-learn", "gone", "new", "zipp",
    ]  # fmt: skip
    assert environment_differences(now, now) == []


def test_check_batches(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("x\n1\n")
    good = storage.content_hash(path.as_uri())
    found = check_batches(
        [
            {"uri": path.as_uri(), "content_hash": good},
            {"uri": path.as_uri(), "content_hash": "0" * 64},
            {"uri": (tmp_path / "nope.csv").as_uri(), "content_hash": "1" * 64},
        ]
    )
    assert [f["status"] for f in found] == ["ok", "changed", "missing"]
    assert found[1]["found_hash"] == good
