"""Semantic versions: what changed between two fingerprints decides the next number (pure rules)."""

from __future__ import annotations

import pytest

from mlops.core.semver import Fingerprint, next_semver, parse_semver

pytestmark = pytest.mark.unit

# Pure rules ---------------------------------------------------------------------------------------------------
BASE = Fingerprint(features="f1", target="y", estimator="sklearn.linear_model.LogisticRegression", data_hash="d1",
                   config_hash="c1")  # fmt: skip


def _with(**changes: str) -> Fingerprint:
    return Fingerprint(**{**BASE.__dict__, **changes})


@pytest.mark.parametrize(
    ("now", "expected", "kind"),
    [
        (BASE, "1.4.3", "patch"),
        (_with(data_hash="d2"), "1.5.0", "minor"),
        (_with(config_hash="c2"), "1.5.0", "minor"),
        (_with(data_hash="d2", config_hash="c2"), "1.5.0", "minor"),
        (_with(features="f2"), "2.0.0", "major"),
        (_with(target="z"), "2.0.0", "major"),
        (_with(estimator="sklearn.ensemble.RandomForestClassifier", data_hash="d2"), "2.0.0", "major"),
    ],
    ids=["same-data-and-config", "new-data", "new-recipe", "both", "features", "target", "family"],
)
def test_next_semver_follows_the_rules(now: Fingerprint, expected: str, kind: str) -> None:
    semver, found_kind, why = next_semver("1.4.2", BASE, now)
    assert (semver, found_kind) == (expected, kind), why


def test_the_first_version_is_1_0_0_and_family_names_the_change() -> None:
    assert next_semver(None, None, BASE)[:2] == ("1.0.0", "initial")
    _, _, why = next_semver("1.0.0", BASE, _with(estimator="sklearn.dummy.DummyClassifier"))
    assert why == "the model family changed (LogisticRegression -> DummyClassifier)"


def test_a_taken_semantic_version_moves_to_the_next_free_one() -> None:
    from mlops.core.semver import unique_semver

    taken = {"1.0.0", "1.1.0", "2.0.0", "1.1.1"}
    assert unique_semver("1.2.0", "minor", taken) == "1.2.0"
    assert unique_semver("2.0.0", "major", taken) == "3.0.0"  # a second family change from the 1.x line
    assert unique_semver("1.1.0", "minor", taken) == "1.2.0"  # two retrains of one champion
    assert unique_semver("1.1.1", "patch", taken) == "1.1.2"


def test_parse_semver_refuses_what_is_not_one() -> None:
    assert parse_semver("10.2.0") == (10, 2, 0)
    for bad in ("1.2", "v1.2.3", "1.2.x", ""):
        with pytest.raises(ValueError, match="not a semantic version"):
            parse_semver(bad)
