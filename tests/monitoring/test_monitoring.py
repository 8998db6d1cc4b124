"""Monitoring: a window of the inference log analyzed (drift, effect sizes, late labels) and its retraining batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.config import PipelineConfig, parse_config
from mlops.monitoring.analysis import analyze_window
from mlops.monitoring.window import read_window, retrain_batch

pytestmark = pytest.mark.unit
DAY = datetime(2026, 11, 1, tzinfo=UTC)


def _config(**monitoring: Any) -> PipelineConfig:
    return parse_config(
        {
            "name": "shop",
            "task": "regression",
            "data": {"source": "landing/shop/{ds}.parquet"},
            "target": "units",
            "features": [
                {"name": "price", "type": "numeric"},
                {"name": "temperature", "type": "numeric"},
                {"name": "store", "type": "categorical"},
            ],
            "model": {"estimator": "sklearn.linear_model.LinearRegression"},
            "gate": {"primary_metric": "rmse", "threshold": 100},
            "monitoring": monitoring,
        }
    )


def _frame(rows: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = rng.normal(10 + shift * 3, 3, rows)
    frame = pd.DataFrame(
        {
            "price": price,
            "temperature": rng.normal(15, 5, rows),
            "store": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]),
        }
    )
    frame["units"] = 100 - 4 * frame["price"] + rng.normal(0, 2, rows)
    frame["prediction"] = 100 - 4 * frame["price"]
    return frame


def test_analysis_detects_drift_explains_it_and_scores_late_labels() -> None:
    config = _config(min_rows=50)
    reference = _frame(5000, seed=1)
    calm = analyze_window(config, _frame(2000, seed=2), reference, start=DAY, end=DAY, model_version=1)
    assert calm.status == "analyzed" and not calm.drifted and calm.drift is not None
    assert calm.drift.drifted_columns == [] and calm.quality and calm.quality["success"]
    moved = analyze_window(
        config, _frame(2000, shift=1.0, seed=3), reference, start=DAY, end=DAY, model_version=1
    )
    assert moved.drifted and moved.drift is not None and moved.drift.dataset_drift
    assert moved.drift.drifted_columns[0] == "price"  # the largest effect first
    assert "temperature" not in moved.drift.drifted_columns
    assert moved.prediction is not None and moved.prediction.drifted
    assert any("price: wasserstein" in reason for reason in moved.reasons())
    empty = analyze_window(config, _frame(10), reference, start=DAY, end=DAY, model_version=1)
    assert empty.status == "no_data" and "10 predictions" in empty.reasons()[0]


def test_an_effect_size_is_reported_next_to_a_p_value() -> None:
    config = _config(drift={"numeric": {"method": "ks", "threshold": 0.05}})
    reference = _frame(20_000, seed=1)
    current = _frame(100_000, seed=4)
    current["price"] += 0.05  # negligible: 1.7 % of a standard deviation
    analysis = analyze_window(
        config, current, reference, start=DAY, end=DAY, model_version=1, check_quality=False
    )
    assert analysis.drift is not None
    price = analysis.drift.columns["price"]
    assert price.method == "ks" and price.effect_method == "wasserstein"
    assert price.effect_size < 0.05  # whatever the p-value says, the shift is tiny


def test_late_feedback_is_joined_and_becomes_a_retraining_batch(mlops_home: Path) -> None:
    from mlops.serving.inference_log import InferenceLog

    config = _config()
    frame = _frame(60, seed=5)
    log = InferenceLog.from_config(config)
    log.log_predictions(
        {
            "time": DAY + timedelta(hours=23, minutes=i),
            "request_id": f"r{i}",
            "model_version": 1,
            "route": "champion",
            "inputs": {
                "price": float(frame["price"][i]),
                "temperature": float(frame["temperature"][i]),
                "store": frame["store"][i],
            },
            "prediction": float(frame["prediction"][i]),
        }
        for i in range(60)
    )
    # Labels come three days later, into another date partition; some never come.
    for i in range(0, 60, 2):
        log.log_feedback(f"r{i}", float(frame["units"][i]), DAY + timedelta(days=3))
    log.close()

    window = read_window(config, DAY, DAY + timedelta(days=1))
    assert len(window) == 60 and window["label"].notna().sum() == 30
    assert {"price", "temperature", "store", "prediction", "label", "feedback_time"} <= set(window.columns)
    assert read_window(config, DAY + timedelta(days=1), DAY + timedelta(days=2)).empty

    uri = retrain_batch(config, DAY, DAY + timedelta(days=1), stamp="test")
    batch = pd.read_parquet(uri.removeprefix("file://"))
    assert len(batch) == 30 and list(batch.columns) == ["price", "temperature", "store", "units"]
    assert batch["units"].tolist() == [float(frame["units"][i]) for i in range(0, 60, 2)]


def test_a_small_clean_window_is_judged_against_the_noise_floor_and_both_thresholds_are_recorded() -> None:
    """150 rows against 400: sampling noise alone moves a normed Wasserstein distance past 0.1 on some
    windows. With the default noise floor such a window is ok, and summary.json says why."""
    reference = _frame(400, seed=1)
    fixed = _config(drift={"noise_sigmas": 0})
    calm = [_frame(150, seed=20 + i) for i in range(12)]
    noisy = [
        analyze_window(fixed, window, reference, start=DAY, end=DAY, model_version=1, check_quality=False)
        for window in calm
    ]
    assert any(a.drift is not None and a.drift.drifted_columns for a in noisy)  # noise past 0.1
    floored = [
        analyze_window(_config(), window, reference, start=DAY, end=DAY, model_version=1, check_quality=False)
        for window in calm
    ]
    assert not any(a.drifted or (a.drift and a.drift.drifted_columns) for a in floored)
    summary = floored[0].to_dict()
    price = summary["drift"]["columns"]["price"]
    assert price["configured_threshold"] == 0.1 and price["noise_floor"] > 0.1
    assert price["threshold"] == price["noise_floor"]
    prediction = summary["prediction_drift"]
    assert prediction["configured_threshold"] == 0.1 and prediction["threshold"] >= 0.1

    moved = analyze_window(
        _config(), _frame(150, shift=1.0, seed=40), reference, start=DAY, end=DAY, model_version=1
    )
    assert moved.drifted and moved.prediction is not None and moved.prediction.drifted
    assert any("raised to the noise of 150 rows" in reason for reason in moved.reasons())
