"""The closed loop on a dataset the kit has never seen, with a config written from the docs alone.

Data: the affairs survey that ships with statsmodels (Fair, 1978; 6,366 rows), as its maintainers publish it:
every column float64, its integer-coded categoricals (how happy the marriage is, 1..5; how religious, 1..4;
occupation codes 1..6) included, so a CSV written from it spells the codes "3.0". The config declares them
`categorical` with `allowed: [1, 2, 3, 4, 5]` as a person would write them. Clients send the codes as JSON
integers. Through Airflow (`dag.test()`), the real model server app and inference log, and a real MLflow store:
a clean window is `ok`; a concept shift seen only in the feedback labels is detected; the retraining batch the
loop writes passes validation (no quarantine) and trains the new champion.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagtools import champion, parse_dags, task_states
from starlette.testclient import TestClient

pytestmark = pytest.mark.e2e
PIPELINE = "affairs"

CONFIG = """\
name: affairs
task: classification
data:
  source: landing/affairs/{ds}.csv
target: had_affair
features:
  - {name: rate_marriage, type: categorical, description: "1 very poor .. 5 very good"}
  - {name: religious, type: categorical, description: "1 not .. 4 strongly"}
  - {name: occupation, type: categorical}
  - {name: occupation_husb, type: categorical}
  - {name: age, type: numeric}
  - {name: yrs_married, type: numeric}
  - {name: children, type: numeric}
  - {name: educ, type: numeric}
expectations:
  row_count: {min: 100}
  columns:
    rate_marriage: {allowed: [1, 2, 3, 4, 5]}
    religious: {allowed: [1, 2, 3, 4]}
    occupation: {allowed: [1, 2, 3, 4, 5, 6]}
    occupation_husb: {allowed: [1, 2, 3, 4, 5, 6]}
    age: {min: 16, max: 80}
    had_affair: {allowed: [0, 1]}
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 1000}
gate:
  primary_metric: roc_auc
  threshold: 0.6
monitoring:
  min_rows: 100
  performance: {min_labels: 100, max_drop: 0.05}
  retrain: {consecutive_windows: 1, min_new_labels: 100, data: recent}
"""


def _survey() -> pd.DataFrame:
    from statsmodels.datasets import fair

    data = fair.load_pandas().data.sample(frac=1.0, random_state=5).reset_index(drop=True)
    data["had_affair"] = (data.pop("affairs") > 0).astype(int)
    return data


def _serve(config: Any, rows: pd.DataFrame, labels: pd.Series, tag: str) -> tuple[datetime, datetime]:
    """Send each row as a client would (codes as JSON integers), then its label; return the window served."""
    from mlops.config import settings
    from mlops.serving.app import create_app
    from mlops.serving.inference_log import InferenceLog

    start = datetime.now(UTC)
    with TestClient(create_app(config, inference_log=InferenceLog.from_config(config))) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").text
            time.sleep(0.1)
        for i, row in enumerate(rows.to_dict("records")):
            record = {
                name: int(value) if name in config.categorical_features else float(value)
                for name, value in row.items()
            }
            reply = client.post("/predict", json={"record": record}, headers={"X-Request-ID": f"{tag}-{i}"})
            assert reply.status_code == 200, reply.text
            # Feedback joins on the server's request id, with the token the server generated in the home.
            feedback = {"request_id": reply.json()["request_id"], "label": int(labels.iat[i])}
            token = {"Authorization": f"Bearer {settings.serving_admin_token()}"}
            answer = client.post("/feedback", json=feedback, headers=token)
            assert answer.status_code == 202, answer.text
    return start, datetime.now(UTC)


def _monitor(bag: Any, start: datetime, end: datetime) -> dict[str, Any]:
    dag_run = bag.get_dag(f"{PIPELINE}_monitoring").test(
        run_conf={"start": start.isoformat(), "end": end.isoformat()}
    )
    assert dag_run.state == "success", task_states(dag_run)
    analyze = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "analyze")
    return analyze.xcom_pull(task_ids="analyze")


def test_integer_coded_survey_monitors_ok_detects_a_concept_shift_and_retrains_without_quarantine(
    airflow_db: Path, mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.config import load_config

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / f"{PIPELINE}.yaml").write_text(CONFIG)
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    config = load_config(pipelines / f"{PIPELINE}.yaml")
    survey = _survey()
    first = tmp_path / "2026-11-01.csv"
    survey.iloc[:3000].to_csv(first, index=False)
    assert "3.0" in first.read_text().splitlines()[1]  # the codes as the publisher's floats spell them

    bag = parse_dags()
    assert not bag.import_errors, bag.import_errors
    training = bag.get_dag(f"{PIPELINE}_training")
    run = training.test(run_conf={"data_uri": str(first), "model": None, "reason": ""})
    assert run.state == "success", task_states(run)
    assert champion(PIPELINE) == 1

    # A clean window: the same population, true labels. Every code is one of the allowed values.
    clean = survey.iloc[3000:3600]
    start, end = _serve(config, clean.drop(columns="had_affair"), clean["had_affair"], "clean")
    outcome = _monitor(bag, start, end)
    assert outcome["status"] == "ok", outcome["reasons"]

    # A concept shift: the same inputs, but the outcome now goes the other way. Only the labels show it.
    shifted = survey.iloc[3600:4400]
    start, end = _serve(config, shifted.drop(columns="had_affair"), 1 - shifted["had_affair"], "shift")
    outcome = _monitor(bag, start, end)
    assert outcome["status"] == "retrain", outcome["reasons"]
    assert any("live roc_auc" in reason for reason in outcome["reasons"]), outcome["reasons"]
    assert not any(
        "<bound method" in reason or "not in the allowed" in reason for reason in outcome["reasons"]
    )

    # The loop's own batch, as the Asset event hands it to the training DAG: accepted, trained, promoted.
    from mlops.airflow.operators import retraining_request

    request = retraining_request(outcome)
    retrain = training.test(run_conf={"model": None, **request})
    states = task_states(retrain)
    assert states["validate"] == "success" and states["train"] == "success", states
    assert retrain.state == "success", states
    assert champion(PIPELINE) == 2
