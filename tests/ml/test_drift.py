"""Drift decisions: ``compute_drift`` against a plain Evidently ``Report([DataDriftPreset()])`` on small frames.

Every column's decision (drift or not), method and threshold must be Evidently's, and the score the same to the
last few bits (string categories are summed in the order of a Python set, which changes between processes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.config import Drift, DriftTest
from mlops.ml import drift, noise
from mlops.ml.drift import ColumnDrift, DriftResult, column_drift, compute_drift

DEFAULTS = Drift()


def evidently_decisions(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, dict]:
    """Per column: the method (registered name), threshold, score and decision of a plain preset."""
    from evidently import Report
    from evidently.legacy.calculations.stattests import registry
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=current, reference_data=reference
    )
    document = snapshot.dict()
    names = {
        test.display_name: test.name
        for tests in registry._registered_stat_tests.values()
        for test in tests.values()
    }
    status = {
        test["metric_config"]["metric_id"]: test["status"]
        for test in document["tests"]
        if test["metric_config"]["params"]["type"].endswith(":ValueDrift")
    }
    decisions = {}
    for metric in document["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            assert status[metric["id"]] in ("FAIL", "SUCCESS")
            decisions[config["column"]] = {
                "method": names[config["method"]],
                "threshold": config["threshold"],
                "score": float(metric["value"]),
                "drifted": status[metric["id"]] == "FAIL",
            }
    return decisions


def assert_same(ours: DriftResult, theirs: dict[str, dict]) -> None:
    assert set(ours.columns) == set(theirs)
    for name, expected in theirs.items():
        column = ours.columns[name]
        assert (column.method, column.threshold, column.drifted) == (
            expected["method"],
            expected["threshold"],
            expected["drifted"],
        ), name
        assert column.score == pytest.approx(expected["score"], rel=1e-9, abs=1e-15), name


def _with_gaps(rng: np.random.Generator, values: np.ndarray, nan: float, inf: float) -> np.ndarray:
    values = values.astype(float)
    draw = rng.random(len(values))
    values[draw < nan] = np.nan
    values[(draw >= nan) & (draw < nan + inf)] = np.inf
    values[(draw >= nan + inf) & (draw < nan + 2 * inf)] = -np.inf
    return values


def _strings(
    rng: np.random.Generator, rows: int, levels: list[str], p: list[float], nan: float = 0.0
) -> np.ndarray:
    values = rng.choice(np.array(levels, dtype=object), size=rows, p=p)
    values[rng.random(rows) < nan] = None
    return values


def frames(
    reference_rows: int, current_rows: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Both sides, and each column's kind: clear drift, none, near 0.1, few values, gaps, text, categories."""
    rng = np.random.default_rng(seed)

    def side(rows: int, current: bool) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "shifted": rng.normal(0.6 if current else 0.0, 1.0, rows),
                "same": rng.lognormal(0.0, 0.5, rows),
                "near": rng.normal(0.1 if current else 0.0, 1.0, rows),
                "gaps": _with_gaps(rng, rng.normal(5.0, 2.0, rows), 0.05, 0.01 if current else 0.02),
                "few": rng.choice(
                    [0.0, 1.0, 2.0, 3.0],
                    size=rows,
                    p=[0.25, 0.25, 0.3, 0.2] if current else [0.4, 0.3, 0.2, 0.1],
                ),
                "binary": rng.choice([0.0, 1.0], size=rows, p=[0.5, 0.5] if current else [0.7, 0.3]),
                "count": rng.poisson(25 if current else 20, rows).astype("int64"),
                "channel": _strings(rng, rows, ["web", "store", "phone"], [0.5, 0.3, 0.2], nan=0.03),
                "region": _strings(
                    rng,
                    rows,
                    ["north", "south", "east", "west"],
                    [0.1, 0.2, 0.3, 0.4] if current else [0.4, 0.3, 0.2, 0.1],
                ),
                "flag": _strings(rng, rows, ["yes", "no"], [0.5, 0.5] if current else [0.6, 0.4]),
                "tier": pd.Categorical(
                    _strings(rng, rows, ["gold", "silver", "bronze"], [0.2, 0.3, 0.5], nan=0.02)
                ),
            }
        )

    kinds = {
        "shifted": "numeric",
        "same": "numeric",
        "near": "numeric",
        "gaps": "numeric",
        "few": "numeric",
        "binary": "numeric",
        "count": "numeric",
        "channel": "categorical",
        "region": "categorical",
        "flag": "categorical",
        "tier": "categorical",
    }
    return side(reference_rows, False), side(current_rows, True), kinds


def kit_tests(kinds: dict[str, str]) -> dict[str, DriftTest]:
    return {
        name: DEFAULTS.numeric if kind == "numeric" else DEFAULTS.categorical for name, kind in kinds.items()
    }


@pytest.mark.unit
def test_the_frames_are_typed_by_evidently_as_by_the_kit() -> None:
    from evidently.core.datasets import infer_column_type

    reference, current, kinds = frames(1500, 2000, seed=1)
    for frame in (reference, current):
        assert {name: infer_column_type(frame[name]).value for name in kinds} == {
            name: kind[:3] for name, kind in kinds.items()
        }


@pytest.mark.unit
@pytest.mark.parametrize("seed", [1, 2])
def test_kit_default_tests_decide_as_the_plain_preset_on_a_large_reference(seed: int) -> None:
    """Reference > 1000 rows: Evidently picks normed Wasserstein and Jensen-Shannon at 0.1, as the kit does;
    a numeric column with at most 5 values is tested as categories by both."""
    reference, current, kinds = frames(1500, 2500, seed=seed)
    result = compute_drift(reference, current, kinds, kit_tests(kinds))
    theirs = evidently_decisions(reference, current)
    assert_same(result, theirs)
    assert {theirs[name]["method"] for name in ("few", "binary")} == {"jensenshannon"}
    assert result.columns["shifted"].drifted and not result.columns["same"].drifted
    assert not all(c.drifted for c in result.columns.values())


@pytest.mark.unit
def test_evidently_own_choice_decides_as_the_plain_preset_on_a_small_reference() -> None:
    """Reference <= 1000 rows and test=None: K-S, chi-square and Z p-values, as Evidently chooses them."""
    reference, current, kinds = frames(800, 900, seed=3)
    result = compute_drift(reference, current, kinds, dict.fromkeys(kinds))
    theirs = evidently_decisions(reference, current)
    assert_same(result, theirs)
    methods = {name: column.method for name, column in result.columns.items()}
    assert methods["shifted"] == "ks"
    assert methods["few"] == methods["channel"] == "chisquare"
    assert methods["binary"] == methods["flag"] == "z"
    for column in result.columns.values():
        assert column.score_is_p_value
        assert column.effect_method in ("wasserstein", "jensenshannon")


@pytest.mark.unit
def test_missing_and_infinite_values_are_left_out_as_evidently_does() -> None:
    reference, current, kinds = frames(1200, 1300, seed=4)
    gaps = compute_drift(reference, current, kinds, kit_tests(kinds)).columns["gaps"]
    finite = np.isfinite(current["gaps"].to_numpy())
    assert gaps.current_rows == int(finite.sum())
    assert gaps.dropped_current == len(current) - int(finite.sum()) > 0
    assert gaps.reference_rows == int(np.isfinite(reference["gaps"].to_numpy()).sum())


@pytest.mark.unit
@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1.5, np.nan, np.inf, -np.inf, 2.0]),
        pd.Series([1.5, 2.5, 3.5]),
        pd.Series([3, 1, 2], dtype="int64"),
        pd.Series([1, None, 3], dtype="Int64"),
        pd.Series([1.0, None, np.inf], dtype="Float64"),
        pd.Series([True, False, True]),
        pd.Series(["a", None, "b", np.nan]),
        pd.Series(["a", np.inf, "b", None], dtype=object),
        pd.Series([1, np.inf, 2.5, None], dtype=object),
        pd.Series(pd.Categorical(["x", None, "y", "x"])),
        pd.Series(pd.Categorical([1.0, np.inf, 2.0, np.nan])),
        pd.Series(["a", "b"], dtype="string"),
        pd.Series([None, None], dtype=object),
    ],
    ids=lambda s: str(s.dtype) + ":" + ",".join(map(str, s.tolist())),
)
def test_cleaning_equals_evidentlys(series: pd.Series) -> None:
    """The fast paths keep exactly what Evidently's ``replace([-inf, inf], nan).dropna()`` keeps."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' notice about downcasting in replace
        expected = series.replace([-np.inf, np.inf], np.nan).dropna()
    pd.testing.assert_series_equal(drift._clean(series), expected)


@pytest.mark.unit
@pytest.mark.parametrize("workers", [2, 4])
def test_helper_threads_give_the_same_result_as_one_column_after_the_other(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, current, kinds = frames(1500, 3000, seed=5)
    tests = kit_tests(kinds)
    monkeypatch.setattr(drift, "drift_workers", lambda: workers)
    helped = compute_drift(reference, current, kinds, tests)
    monkeypatch.setattr(drift, "drift_workers", lambda: 1)
    alone = compute_drift(reference, current, kinds, tests)
    assert helped.to_dict() == alone.to_dict()
    assert list(helped.columns) == list(kinds)


@pytest.mark.unit
@pytest.mark.parametrize("workers", [1, 3])
def test_the_first_unusable_column_in_order_is_reported(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drift, "drift_workers", lambda: workers)
    reference, current, kinds = frames(1200, 1200, seed=6)
    current = current.assign(near=np.nan, count=pd.Series([None] * len(current), dtype="Int64"))
    with pytest.raises(ValueError, match="column 'near' has no usable value in the current data"):
        compute_drift(reference, current, kinds, kit_tests(kinds))


@pytest.mark.unit
def test_column_drift_explains_its_decision() -> None:
    reference, current, _ = frames(1500, 1500, seed=7)
    column = column_drift("shifted", reference["shifted"], current["shifted"], "numeric", DEFAULTS.numeric)
    assert isinstance(column, ColumnDrift)
    assert column.drifted
    assert column.explain().startswith("shifted: wasserstein ")
    assert column.explain().endswith(">= 0.1 (drift)")


@pytest.mark.unit
@pytest.mark.parametrize(
    "make",
    [
        lambda rng, n: rng.normal(0.0, 1.0, n),
        lambda rng, n: np.round(rng.normal(0.0, 3.0, n)),  # many ties
        lambda rng, n: rng.choice([-0.0, 0.0, 1.5, -2.25, 7.0, 3.0, 4.0], n),  # signed zeros among ties
        lambda rng, n: rng.poisson(12, n).astype("int64"),
    ],
    ids=["continuous", "ties", "signed-zeros", "int64"],
)
def test_wasserstein_on_the_sorted_current_side_is_evidentlys_bit_for_bit(make) -> None:
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(8)
    reference, current = pd.Series(make(rng, 3000)), pd.Series(make(rng, 5000))
    stattest = get_stattest(reference, current, ColumnType.Numerical, "wasserstein")
    expected = stattest(reference, current, ColumnType.Numerical, 0.1)
    column = column_drift("x", reference, current, "numeric", DriftTest(method="wasserstein", threshold=0.1))
    assert column.method == "wasserstein"
    assert column.score == float(expected.drift_score)
    assert column.drifted == bool(expected.drifted)


# The noise floor -------------------------------------------------------------------------------------------
NOISE = 5.0


def _normal(seed: int, rows: int, shift: float = 0.0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(10.0 + shift, 2.0, rows))


@pytest.mark.unit
def test_a_small_undrifted_window_does_not_drift_against_the_noise_floor_and_a_shifted_one_does() -> None:
    """At 120 rows against 400, two samples of one distribution are ~0.13 apart in normed Wasserstein: above
    the fixed 0.1. The noise floor raises the threshold above that noise, and a real shift still clears it."""
    reference = _normal(1, 400)
    test = DEFAULTS.numeric
    calm = [_normal(100 + i, 120) for i in range(30)]
    fixed = [column_drift("x", reference, window, "numeric", test) for window in calm]
    floored = [column_drift("x", reference, window, "numeric", test, noise_sigmas=NOISE) for window in calm]
    assert sum(c.drifted for c in fixed) >= 10  # the fixed threshold fires on noise
    assert not any(c.drifted for c in floored)
    first = floored[0]
    assert first.configured_threshold == 0.1 and first.noise_floor is not None
    assert first.threshold == first.noise_floor > 0.2 and first.raised_by_noise
    assert first.explain().endswith("(no drift; threshold 0.1 raised to the noise of 120 rows)")

    shifted = column_drift("x", reference, _normal(7, 120, shift=1.2), "numeric", test, noise_sigmas=NOISE)
    assert shifted.drifted and shifted.threshold == first.threshold  # same sizes: the same floor
    assert shifted.score > shifted.threshold


@pytest.mark.unit
def test_a_pure_reference_subsample_does_not_drift_on_small_windows() -> None:
    rng = np.random.default_rng(2)
    reference = pd.Series(rng.lognormal(0.0, 0.6, 600))
    categories = pd.Series(rng.choice(["a", "b", "c", "d"], 600, p=[0.4, 0.3, 0.2, 0.1]))
    for rows in (60, 150, 300):
        for draw in range(10):
            pick = rng.choice(len(reference), rows, replace=False)
            numeric = column_drift(
                "x", reference, reference.iloc[pick], "numeric", DEFAULTS.numeric, noise_sigmas=NOISE
            )
            categorical = column_drift(
                "c",
                categories,
                categories.iloc[pick],
                "categorical",
                DEFAULTS.categorical,
                noise_sigmas=NOISE,
            )
            assert not numeric.drifted and not categorical.drifted, (rows, draw)


@pytest.mark.unit
def test_large_windows_keep_the_configured_threshold_and_evidentlys_decisions() -> None:
    reference, current, kinds = frames(6000, 20_000, seed=9)
    tests = kit_tests(kinds)
    floored = compute_drift(reference, current, kinds, tests, noise_sigmas=NOISE)
    plain = compute_drift(reference, current, kinds, tests)
    for name, column in floored.columns.items():
        assert column.noise_floor is not None and column.noise_floor < column.configured_threshold, name
        assert column.threshold == column.configured_threshold == plain.columns[name].threshold, name
        assert (column.score, column.drifted) == (plain.columns[name].score, plain.columns[name].drifted)
        assert not column.raised_by_noise and "raised" not in column.explain()


@pytest.mark.unit
def test_a_raised_threshold_is_evidentlys_decision_at_that_threshold() -> None:
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    reference, current, kinds = frames(500, 150, seed=10)
    kinds = {name: kinds[name] for name in ("shifted", "same", "near", "binary", "region")}
    result = compute_drift(reference, current, kinds, kit_tests(kinds), noise_sigmas=NOISE)
    raised = [c for c in result.columns.values() if c.raised_by_noise]
    assert raised
    for column in raised:
        column_type = ColumnType.Numerical if column.kind == "numeric" else ColumnType.Categorical
        ref, cur = drift._clean(reference[column.column]), drift._clean(current[column.column])
        stattest = get_stattest(ref, cur, column_type, column.method)
        expected = stattest(ref, cur, column_type, column.threshold)
        assert float(expected.drift_score) == pytest.approx(column.score, rel=1e-9)
        assert bool(expected.drifted) == column.drifted


@pytest.mark.unit
def test_p_value_tests_get_no_noise_floor() -> None:
    reference, current, kinds = frames(800, 120, seed=11)
    ks = DriftTest(method="ks", threshold=0.05)
    column = column_drift("same", reference["same"], current["same"], "numeric", ks, noise_sigmas=NOISE)
    assert column.method == "ks" and column.noise_floor is None
    assert column.threshold == column.configured_threshold == 0.05


@pytest.mark.unit
def test_the_floor_is_seeded_cached_and_independent_of_the_column_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference, current, kinds = frames(700, 200, seed=12)
    kinds = {name: kinds[name] for name in ("shifted", "same", "few", "channel")}
    tests = kit_tests(kinds)
    noise._NULL_CACHE.clear()
    first = compute_drift(reference, current, kinds, tests, noise_sigmas=NOISE)
    drawn = []
    original = noise._null_scores
    monkeypatch.setattr(noise, "_null_scores", lambda *a, **k: drawn.append(a[0].name) or original(*a, **k))
    again = compute_drift(reference, current, kinds, tests, noise_sigmas=NOISE)
    assert drawn == []  # every column's draws came from the cache
    noise._NULL_CACHE.clear()
    backwards = dict(reversed(list(kinds.items())))
    fresh = compute_drift(reference, current, backwards, tests, noise_sigmas=NOISE)
    for name in kinds:
        assert first.columns[name] == again.columns[name] == fresh.columns[name], name
