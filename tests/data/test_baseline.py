"""The recorded baseline: its profile, its checks (warn and fail), where it is stored, and how it is refreshed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.config import PipelineConfig, parse_config
from mlops.data import baseline as baselines
from mlops.data import storage
from mlops.data.report import ValidationReport
from mlops.data.validation import build_suite, validate_frame

pytestmark = pytest.mark.unit


def _config(mode: str = "warn", **expectations: Any) -> PipelineConfig:
    """A minimal config (no expectations) of a few typed columns; ``expectations`` adds to it."""
    return parse_config(
        {
            "name": "shop",
            "task": "classification",
            "data": {"source": "landing/{ds}.csv"},
            "target": "bought",
            "features": [
                {"name": "price", "type": "numeric"},
                {"name": "discount", "type": "numeric", "nullable": True},
                {"name": "store", "type": "categorical"},
                {"name": "customer", "type": "categorical"},
            ],
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "gate": {"primary_metric": "accuracy", "threshold": 0.5},
            "expectations": {"baseline": mode, **expectations},
        }
    )


def _frame(
    rows: int = 200, seed: int = 0, *, price_shift: float = 0.0, stores: tuple = (1, 2, 3)
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "price": rng.uniform(1, 100, rows) + price_shift,
            "discount": rng.uniform(0, 0.5, rows),
            "store": rng.choice(stores, rows),  # integer codes, as a Parquet file or pandas holds them
            "customer": [f"c{i}" for i in range(rows)],  # an identifier: too many values to check
            "bought": rng.integers(0, 2, rows),
        }
    )
    frame.loc[frame.index[::10], "discount"] = np.nan
    return frame


# The profile ---------------------------------------------------------------------------------------------------
def test_the_profile_holds_ranges_canonical_values_and_null_shares() -> None:
    config = _config()
    frame = _frame()

    profile = baselines.profile_frame(frame, config, batch="a" * 64, source="file:///b.csv")

    price = profile.numeric["price"]
    assert price["seen_min"] == pytest.approx(frame["price"].min())
    span = frame["price"].max() - frame["price"].min()
    assert price["max"] == pytest.approx(frame["price"].max() + 0.25 * span)
    assert price["min"] == 0.0  # widened below 0 would allow negative prices: clamped
    assert profile.categorical["store"] == ["1", "2", "3"]  # canonical text, as validation compares
    assert profile.categorical["bought"] == [0, 1]  # the labels as they are
    assert "customer" in profile.skipped and "customer" not in profile.categorical
    assert profile.null_fraction["discount"] == pytest.approx(0.1)
    assert profile.rows == 200
    assert profile.fingerprint == baselines.config_fingerprint(config)
    assert baselines.Baseline.from_json(profile.to_json()) == profile


def test_widened_range_and_allowed_nulls() -> None:
    assert baselines.widened_range(10.0, 20.0) == (7.5, 22.5)
    assert baselines.widened_range(1.0, 3.0) == (0.5, 3.5)
    assert baselines.widened_range(1.0, 9.0) == (0.0, 11.0)  # not below 0 when nothing was negative
    assert baselines.widened_range(-1.0, 3.0) == (-2.0, 4.0)
    assert baselines.widened_range(5.0, 5.0) == (3.75, 6.25)  # one value: a quarter of its size
    assert baselines.widened_range(0.0, 0.0) == (0.0, 1.0)
    assert baselines.allowed_null_fraction(0.0) == 0.05
    assert baselines.allowed_null_fraction(0.2) == 0.4
    assert baselines.allowed_null_fraction(0.7) == 1.0


def test_a_baseline_applies_only_without_column_rules_and_not_when_off() -> None:
    assert baselines.applies(_config())
    assert baselines.applies(_config("fail"))
    assert not baselines.applies(_config("off"))
    assert not baselines.applies(_config(columns={"price": {"min": 0}}))


# The checks ---------------------------------------------------------------------------------------------------
def _recorded(config: PipelineConfig) -> baselines.Baseline:
    return baselines.profile_frame(_frame(seed=1), config, batch="b" * 64, source="file:///first.csv")


def test_a_batch_like_the_first_passes_without_warnings() -> None:
    config = _config()
    report = validate_frame(_frame(seed=2), config, baseline=_recorded(config))

    assert report.success and report.warnings == [] and report.failed == []
    sources = [e["expectation_config"]["meta"]["source"] for e in report.result["results"]]
    assert sources.count("baseline") == 5  # price and discount ranges, store and label sets, discount nulls
    assert report.evaluated == len(build_suite(config).expectations) + 5


def test_warn_mode_accepts_an_out_of_range_batch_and_reports_warnings() -> None:
    config = _config("warn")
    batch = _frame(seed=3, price_shift=10_000, stores=(7, 8))

    report = validate_frame(batch, config, baseline=_recorded(config))

    assert report.success and report.failed == []
    assert {(w.column, w.expectation) for w in report.warnings} == {
        ("price", "expect_column_values_to_be_between"),
        ("store", "expect_column_values_to_be_in_set"),
    }
    price = next(w for w in report.warnings if w.column == "price")
    assert price.unexpected_count == 200 and "baseline of batch bbbbbbbbbbbb" in price.rule
    assert report.summary().startswith("Passed with 2 warnings on 200 rows of shop")
    assert "price: 200 rows outside" in report.summary()
    assert report.unsuccessful == 0
    again = ValidationReport.from_json(report.to_json())
    assert again.warnings == report.warnings and again.success
    page = report.to_html()
    assert "PASSED WITH WARNINGS" in page and page.count('class="warn"') == 2
    assert "baseline · expect_column_values_to_be_between" in page


def test_fail_mode_fails_the_same_batch_with_source_baseline() -> None:
    config = _config("fail")
    batch = _frame(seed=3, price_shift=10_000, stores=(7, 8))

    report = validate_frame(batch, config, baseline=_recorded(config))

    assert not report.success and report.warnings == []
    assert {f.column for f in report.failed} == {"price", "store"}
    assert report.summary().startswith("2 of ")
    assert "FAILED" in report.to_html()


def test_a_few_odd_rows_are_tolerated_but_more_nulls_are_flagged() -> None:
    config = _config("fail")
    batch = _frame(seed=4)
    batch.loc[batch.index[:2], "price"] = 1e9  # 1 % of the rows
    batch.loc[batch.index[:100], "discount"] = np.nan  # 50 % null where the baseline had 10 %

    report = validate_frame(batch, config, baseline=_recorded(config))

    assert [(f.column, f.expectation) for f in report.failed] == [
        ("discount", "expect_column_values_to_not_be_null")
    ]
    assert "at most 20% of rows" in report.failed[0].rule


def test_a_missing_column_is_reported_once_not_per_baseline_check() -> None:
    config = _config()
    report = validate_frame(_frame(seed=5).drop(columns=["price"]), config, baseline=_recorded(config))

    assert not report.success
    assert [(f.column, f.detail) for f in report.failed] == [("price", "column is missing")]
    assert report.warnings == []


# Storage -------------------------------------------------------------------------------------------------------
def test_record_load_reset(mlops_home: Path) -> None:
    config = _config()
    assert baselines.load_baseline("shop") is None and baselines.active_baseline(config) is None

    recorded = baselines.record_baseline(config, _frame(), batch="c" * 64, source="file:///x.csv")

    assert baselines.baseline_uri("shop") == storage.join(
        (mlops_home / "store").resolve().as_uri(), "shop", "baseline", "baseline.json"
    )
    stored = json.loads((mlops_home / "store" / "shop" / "baseline" / "baseline.json").read_text())
    assert stored["categorical"]["store"] == ["1", "2", "3"] and stored["rows"] == 200
    assert baselines.active_baseline(config) == recorded
    assert baselines.active_baseline(_config("off")) is None
    assert baselines.active_baseline(_config(columns={"price": {"min": 0}})) is None

    retired = baselines.reset_baseline("shop")

    assert retired is not None and "/baseline/retired/" in retired and storage.exists(retired)
    assert baselines.load_baseline("shop") is None
    assert baselines.reset_baseline("shop") is None


def test_a_baseline_of_other_features_is_not_used(mlops_home: Path) -> None:
    config = _config()
    baselines.record_baseline(config, _frame(), batch="d" * 64, source="file:///x.csv")
    changed = config.model_copy(update={"features": config.features[:3]})

    assert baselines.active_baseline(changed) is None  # the next accepted batch replaces it
    replaced = baselines.record_baseline(changed, _frame(seed=9), batch="e" * 64, source="file:///y.csv")
    assert baselines.active_baseline(changed) == replaced
    retired = list((mlops_home / "store" / "shop" / "baseline" / "retired").iterdir())
    assert len(retired) == 1 and json.loads(retired[0].read_text())["batch"] == "d" * 64


def test_an_unreadable_baseline_is_replaced_not_fatal(mlops_home: Path) -> None:
    config = _config()
    path = mlops_home / "store" / "shop" / "baseline" / "baseline.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")

    assert baselines.active_baseline(config) is None
    baselines.record_baseline(config, _frame(), batch="f" * 64, source="file:///x.csv")
    assert baselines.active_baseline(config) is not None
    (retired,) = (path.parent / "retired").iterdir()
    assert retired.read_text() == "{not json"
