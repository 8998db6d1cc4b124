"""``mlops simulate`` end to end on a short stream: three policies, each with a real MLflow store in its own
MLOPS_HOME and a real ``mlops serve`` subprocess; the inference log and the feedback labels are real.

Four windows, drift from window 2: the drift policy may retrain only after the onset (two drifted windows in a
row are needed), the periodic one every second window, the never policy not at all. The outputs must exist and
agree with each other.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from mlops.config import PipelineConfig, RowCount, load_config
from mlops.tooling.simulation import DRIFT, NEVER, PERIODIC, SimulationSettings, run_simulation

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def small_demand() -> PipelineConfig:
    """demand_forecast for small windows: batches of a few hundred rows pass validation, retraining needs 50
    labels, and a smaller forest trains and predicts faster."""
    config = load_config(REPO / "include" / "pipelines" / "demand_forecast.yaml")
    monitoring = config.monitoring
    return config.model_copy(
        update={
            "expectations": config.expectations.model_copy(update={"row_count": RowCount(min=50)}),
            "model": config.model.model_copy(update={"params": {**config.model.params, "n_estimators": 30}}),
            "monitoring": monitoring.model_copy(
                update={"retrain": monitoring.retrain.model_copy(update={"min_new_labels": 50})}
            ),
        }
    )


def test_three_policies_on_one_stream(tmp_path: Path, mlops_home: Path) -> None:
    before = {
        key: os.environ.get(key) for key in ("MLOPS_HOME", "MLFLOW_TRACKING_URI", "MLOPS_PIPELINES_DIR")
    }
    settings = SimulationSettings(
        out=tmp_path / "simulation",
        windows=4,
        onset=2,
        feature_drift=2.0,
        concept_drift=0.5,
        rows_per_window=600,
        initial_rows=3000,
        period=2,
        label_delay=1,
        check_agreement=True,
    )
    progress: list[str] = []
    result = run_simulation(small_demand(), settings, progress=progress.append)

    # The process's environment is back as it was (each policy ran in its own MLOPS_HOME).
    assert {key: os.environ.get(key) for key in before} == before
    for policy in (NEVER, PERIODIC, DRIFT):
        assert (settings.out / policy / "home" / "mlflow.db").exists()
        assert (settings.out / policy / "home" / "store" / "demand_forecast" / "inference").is_dir()

    with (settings.out / "simulation.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    by_policy = {p: [r for r in rows if r["policy"] == p] for p in (NEVER, PERIODIC, DRIFT)}
    for policy, windows in by_policy.items():
        assert [int(r["window"]) for r in windows] == [0, 1, 2, 3]
        assert all(int(r["rows"]) == 600 and float(r["quality"]) > 0 for r in windows), policy
        assert all(r["drift_share"] != "" and r["prediction_drift"] != "" for r in windows), policy
        # The prediction's threshold: at least the configured 0.1 (the noise floor of 600 rows raises it).
        assert all(float(r["prediction_threshold"]) >= 0.1 for r in windows), policy
        # Labels arrive one window late: window 0 has none when it is monitored, and neither has any other.
        assert all(int(r["labelled_rows"]) == 0 for r in windows), policy

    # The same stream and the same first champion: identical until the first retraining takes effect.
    first = {
        p: (w[0]["quality"], w[0]["drift_share"], w[0]["champion_version"]) for p, w in by_policy.items()
    }
    assert len(set(first.values())) == 1

    never, periodic, drift = by_policy[NEVER], by_policy[PERIODIC], by_policy[DRIFT]
    assert not any(r["retrained"] == "1" for r in never)
    assert {r["champion_version"] for r in never} == {"1"}
    assert [r["window"] for r in periodic if r["retrained"] == "1"] == ["1", "3"]
    assert all(r["gate"] in ("promoted", "rejected") for r in periodic if r["retrained"] == "1")

    # The drift policy: nothing before the onset, a retraining after it, when the second drifted window ends.
    assert [r["decision"] for r in drift[:2]] == ["ok", "ok"]
    assert drift[2]["decision"] == "warn" and "1 of the 2 in a row" in drift[2]["reasons"]
    assert drift[3]["decision"] == "retrain" and drift[3]["retrained"] == "1"
    assert drift[3]["gate"] in ("promoted", "rejected") and int(drift[3]["retrain_rows"]) == 600
    assert all(r["drifted_features"] for r in drift[2:])

    # Our per-feature decisions are the plain Evidently report's.
    assert all(r["agreement_compared"] == "8" and r["agreement_disagreements"] == "" for r in rows)

    summary = result.summaries[DRIFT]
    assert (summary.false_alarms, summary.first_warn, summary.first_retrain, summary.retrains) == (0, 2, 3, 1)
    text = (settings.out / "simulation.md").read_text(encoding="utf-8")
    assert "feature drift 2**" in text and "concept drift 0.5**" in text and "| drift |" in text
    assert "0 disagreement(s)" in text
    assert (settings.out / "simulation.png").read_bytes()[:4] == b"\x89PNG"
    assert any("[drift] window  3*" in line and "retrain" in line for line in progress)
