"""A minimal config (no expectations) through the real training DAG: what its validate step catches.

The issue's case: with no `expectations`, a batch with every value far out of range and a 3-row batch used to
pass validation, train and become champion without a word. Now the 3-row batch is rejected by the default
minimum row count, and the out-of-range batch is flagged against the baseline recorded from the first
accepted batch (warn mode, the default) or rejected (`expectations.baseline: fail`), as
docs/pipeline-config.md says ("What a minimal config protects against").
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dagtools import champion, model_versions, parse_dags, task_states
from receivers import WebhookServer

pytestmark = pytest.mark.e2e

MINIMAL_YAML = textwrap.dedent(
    """\
    name: {name}
    task: classification
    data:
      source: landing/{name}/{{ds}}.csv
    target: defaulted
    features:
      - {{name: income, type: numeric}}
      - {{name: grade, type: categorical}}
    model:
      estimator: sklearn.linear_model.LogisticRegression
    gate:
      primary_metric: accuracy
      threshold: 0.6
    deploy:
      smoke_test: {{enabled: false}}
    {extra}
    """
)


def _batch(
    path: Path, rows: int, seed: int, income_scale: float = 1.0, grades: tuple = (0, 1, 2, 3, 4)
) -> Path:
    """Loans whose default depends on income and grade (integer codes); ``income_scale`` moves every value."""
    rng = np.random.default_rng(seed)
    income = rng.uniform(20, 120, rows)
    grade = rng.choice(grades, rows)
    risk = (120 - income) / 100 + np.asarray(grade) / 5 + rng.normal(0, 0.15, rows)
    frame = pd.DataFrame(
        {"income": income * income_scale, "grade": grade, "defaulted": (risk > 0.9).astype(int)}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def _run(bag: Any, dag_id: str, data_uri: Path) -> tuple[Any, dict[str, str], dict[str, Any]]:
    dag_run = bag.get_dag(dag_id).test(run_conf={"data_uri": str(data_uri), "model": None, "reason": ""})
    validated: dict[str, Any] = {}
    for ti in dag_run.get_task_instances():
        if ti.task_id == "validate" and str(ti.state) == "success":
            validated = {key: ti.xcom_pull(task_ids="validate", key=key) for key in ("batch", "summary")}
    return dag_run, task_states(dag_run), validated


def test_a_minimal_config_flags_or_rejects_bad_batches(
    airflow_db: Path,
    mlops_home: Path,
    tmp_path: Path,
    webhook_server: WebhookServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    slack = "alerts: [{channel: slack, conn_id: slack_mlops}]"
    (pipelines / "loans.yaml").write_text(MINIMAL_YAML.format(name="loans", extra=slack))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    strict = "expectations: {baseline: fail}"
    (pipelines / "loans_strict.yaml").write_text(MINIMAL_YAML.format(name="loans_strict", extra=strict))
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    landing = tmp_path / "landing"
    good = _batch(landing / "good.csv", 400, seed=1)
    far_out = _batch(landing / "far_out.csv", 400, seed=2, income_scale=1000.0, grades=(7, 8, 9))
    tiny = _batch(landing / "tiny.csv", 3, seed=3)
    store = mlops_home / "store"
    bag: Any = parse_dags()
    assert not bag.import_errors, bag.import_errors

    # The first batch trains champion v1 and becomes the baseline.
    dag_run, states, validated = _run(bag, "loans_training", good)
    assert dag_run.state == "success", states
    assert champion("loans") == 1 and validated["batch"]["warnings"] == []
    baseline = json.loads((store / "loans" / "baseline" / "baseline.json").read_text())
    assert baseline["categorical"]["grade"] == ["0", "1", "2", "3", "4"] and baseline["rows"] == 400

    # Warn mode (the default): every value far out of range is accepted, and flagged where people look.
    dag_run, states, validated = _run(bag, "loans_training", far_out)
    assert states["validate"] == "success", states
    warnings = validated["batch"]["warnings"]
    assert [w.split(":")[0] for w in warnings] == ["income", "grade"], warnings
    assert "400 rows outside" in warnings[0]
    assert validated["summary"].startswith("Passed with 2 warnings on 400 rows of loans")
    digest = validated["batch"]["content_hash"]
    report = (store / "loans" / "validation" / digest / "report.html").read_text()
    assert "PASSED WITH WARNINGS" in report and "baseline · expect_column_values_to_be_between" in report
    # ... in the alert (event data_warning, a default of every route) and on the version it trained.
    assert webhook_server.wait_for_requests(1)
    alert = webhook_server.requests[0].text
    assert "passed with 2 warning(s)" in alert and "income" in alert, alert
    assert "mlops.validation_warnings" in model_versions("loans")[-1].tags
    webhook_server.requests.clear()

    # A 3-row batch: rejected by the default minimum row count, the champion untouched.
    dag_run, states, _ = _run(bag, "loans_training", tiny)
    assert dag_run.state == "failed" and states["validate"] == "failed", states
    assert states["train"] in ("upstream_failed", "skipped")
    quarantined = [json.loads(p.read_text()) for p in (store / "loans" / "quarantine").glob("*/batch.json")]
    assert [q["rows"] for q in quarantined] == [3]
    assert "row count is 3, expected at least 50" in quarantined[0]["summary"]

    # Fail mode: the same out-of-range batch is quarantined like any failed validation.
    dag_run, states, _ = _run(bag, "loans_strict_training", good)
    assert dag_run.state == "success", states
    dag_run, states, _ = _run(bag, "loans_strict_training", far_out)
    assert dag_run.state == "failed" and states["validate"] == "failed", states
    assert champion("loans_strict") == 1
    (summary,) = [
        json.loads(p.read_text())["summary"]
        for p in (store / "loans_strict" / "quarantine").glob("*/batch.json")
    ]
    assert "income: 400 rows outside" in summary and "grade: 400 rows not in the allowed values" in summary
