"""Deployment decisions (canary judgement), rollback and history, and their command line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mlops import registry
from mlops.config import Canary
from mlops.core.canary import judge_canary, prediction_shift
from mlops.tooling.cli import main

pytestmark = pytest.mark.unit
RULES = Canary(min_requests=100, max_duration_seconds=60, max_error_rate=0.02, max_p99_latency_ms=50,
               max_prediction_shift=0.1)  # fmt: skip


def _stats(**canary: object) -> dict:
    champion = {"requests": 900, "errors": 0, "p99_ms": 10.0, "class_counts": {"0": 600, "1": 300}}
    return {"champion": champion, "canary": {"requests": 120, "errors": 0, "p99_ms": 12.0,
                                              "class_counts": {"0": 80, "1": 40}, **canary}}  # fmt: skip


def test_a_healthy_canary_is_promoted() -> None:
    decision = judge_canary(_stats(), RULES, elapsed_seconds=20)
    assert decision.action == "promote" and "120 requests" in decision.reasons[0]


def test_a_canary_waits_for_enough_requests_then_gives_up() -> None:
    assert judge_canary(_stats(requests=50), RULES, elapsed_seconds=20).action == "wait"
    decision = judge_canary(_stats(requests=50), RULES, elapsed_seconds=61)
    assert decision.action == "rollback" and "only 50 of 100 requests" in decision.reasons[0]


@pytest.mark.parametrize(
    ("canary", "reason"),
    [
        ({"errors": 5}, "error rate 4.2% above 2.0%"),
        ({"p99_ms": 80.0}, "p99 latency 80 ms above 50 ms"),
        ({"class_counts": {"0": 20, "1": 100}}, "predictions moved 0.500"),
    ],
)
def test_each_guard_rolls_a_canary_back(canary: dict, reason: str) -> None:
    decision = judge_canary(_stats(**canary), RULES, elapsed_seconds=20)
    assert decision.action == "rollback"
    assert any(reason in r for r in decision.reasons), decision.reasons


def test_prediction_shift_for_classes_and_for_numbers() -> None:
    assert prediction_shift({"class_counts": {"a": 5, "b": 5}}, {"class_counts": {"a": 5, "b": 5}}) == 0
    assert prediction_shift({"class_counts": {"a": 10}}, {"class_counts": {"b": 3}}) == 1
    assert prediction_shift({"mean": 10.0, "std": 2.0}, {"mean": 13.0, "std": 2.0}) == 1.5
    assert prediction_shift({"mean": None}, {"mean": 1.0}) is None


@pytest.fixture
def tiny_pipeline(store_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Pipeline 'tiny' with three registered versions; champion moved v1 -> v2 -> v3."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.dummy import DummyClassifier

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "tiny.yaml").write_text(
        textwrap.dedent(
            """\
            name: tiny
            task: classification
            data: {source: tiny.csv}
            target: y
            features: [{name: x, type: numeric}]
            model: {estimator: sklearn.dummy.DummyClassifier}
            gate: {primary_metric: accuracy, threshold: 0.1}
            serving: {port: 1}
            """
        )
    )
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]), str(path), pip_requirements=[]
    )
    previous = None
    for _ in range(3):
        version = registry.register_version("tiny", path.as_uri(), "", {})
        registry.promote("tiny", version, previous, audit={"by": "test", "reason": f"release {version}"})
        previous = version
    return "tiny"


def test_rollback_command_returns_to_the_replaced_version(
    tiny_pipeline: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["rollback", "tiny", "--reason", "v3 misbehaves"]) == 0
    assert "champion v3 -> v2 (v3 misbehaves)" in capsys.readouterr().out
    assert registry.alias_version("tiny", registry.CHAMPION) == 2
    assert registry.get_version("tiny", 3).tags["deploy.status"] == "rolled_back"


def test_rollback_command_to_a_chosen_version_and_its_refusals(
    tiny_pipeline: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["rollback", "tiny", "--to-version", "1", "--reason", "back to the first"]) == 0
    assert registry.alias_version("tiny", registry.CHAMPION) == 1
    assert main(["rollback", "tiny", "--to-version", "9", "--reason", "x"]) == 1
    assert "has no version 9" in capsys.readouterr().out
    assert main(["rollback", "tiny", "--to-version", "1", "--reason", "x"]) == 1
    assert "already the champion" in capsys.readouterr().out
    assert registry.alias_version("tiny", registry.CHAMPION) == 1


def test_history_lists_every_move_oldest_first(tiny_pipeline: str, capsys: pytest.CaptureFixture) -> None:
    main(["rollback", "tiny", "--reason", "oops"])
    capsys.readouterr()
    assert main(["history", "tiny", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    moves = [(e["version"], e["event"]) for e in entries]
    assert moves == [
        (1, "promoted"),
        (2, "promoted"),
        (1, "retired"),
        (3, "promoted"),
        (2, "retired"),
        (2, "rolled_back_to"),
        (3, "rolled_back"),
    ]
    assert main(["history", "tiny"]) == 0
    text = capsys.readouterr().out
    assert "v3 -> v2" in text and "oops" in text
