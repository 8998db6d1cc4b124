"""Readable monitoring decisions: a window whose live inputs break the expectations is explained in one short
sentence, in the decision's reasons, the drift alert (real SMTP and webhook receivers), the MLflow tags and
``summary.json``; no repr of a method or an object anywhere.

Runs the real DAGs through ``dag.test()`` (the training DAG for a champion, then the monitoring DAG), so the
text checked is the text people get.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from receivers import SmtpServer, WebhookServer
from served import log_served

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"
DAY = datetime(2026, 11, 1, tzinfo=UTC)
#: Features pushed far past their expectations' bounds (x100): 5 broken rules, 3 named, "and 2 more".
BROKEN = ("mean_radius", "mean_texture", "mean_perimeter", "mean_area", "worst_area")
REPRS = ("<bound method", " object at 0x", "<function ")


def _pipelines(tmp_path: Path) -> Path:
    config = yaml.safe_load((REPO / "include" / "pipelines" / f"{PIPELINE}.yaml").read_text())
    config["monitoring"] = {"min_rows": 30}
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _readable(text: str) -> None:
    for marker in REPRS:
        assert marker not in text, f"{marker!r} in: {text[:300]}"


def test_a_data_quality_failure_reads_as_a_sentence_everywhere(
    airflow_db: Path,
    mlops_home: Path,
    tmp_path: Path,
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from mlops import registry
    from mlops.config import load_config
    from mlops.registry.tags import TAG_REASONS
    from mlops_datagen import generate_batches, generate_frames

    pipelines = _pipelines(tmp_path)
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    config = load_config(pipelines / f"{PIPELINE}.yaml")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    (batch,) = generate_batches(PIPELINE, tmp_path / "landing", batches=1, seed=7)
    trained = bag.get_dag(f"{PIPELINE}_training").test(
        run_conf={"data_uri": str(batch), "model": None, "reason": ""}
    )
    assert trained.state == "success"
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_MLOPS", smtp_server.uri)
    webhook_server.requests.clear()

    ((_, window),) = generate_frames(PIPELINE, batches=1, rows=200, seed=21)
    for name in BROKEN:
        window[name] = window[name] * 100
    log_served(config, window, DAY, "dq")
    dag_run = bag.get_dag(f"{PIPELINE}_monitoring").test(
        run_conf={"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}
    )
    analyze = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "analyze")
    outcome: dict[str, Any] = analyze.xcom_pull(task_ids="analyze")

    # The decision: one reason for data quality, short, naming 3 broken rules and counting the rest.
    assert outcome["status"] in ("warn", "retrain"), outcome["reasons"]
    (quality,) = [r for r in outcome["reasons"] if r.startswith("data quality: ")]
    assert quality.startswith("data quality: 5 rules broken on 200 live rows: mean_radius: 200 rows outside")
    assert quality.endswith(" and 2 more") and len(quality) < 400, quality
    for reason in outcome["reasons"]:
        _readable(reason)
        assert len(reason) <= 600 and "\n" not in reason

    # The alert, as both routes deliver it.
    assert webhook_server.wait_for_requests(1) and smtp_server.wait_for_messages(1)
    post, mail = webhook_server.requests[0].text, smtp_server.messages[0].body()
    for text in (post, mail):
        assert "data quality: 5 rules broken on 200 live rows" in text
        _readable(text)
    assert len(post) < 5000, len(post)

    # The monitoring run in MLflow: its reasons tag and summary.json.
    run = registry.client().get_run(outcome["mlflow_run_id"])
    tags = run.data.tags
    assert quality in tags[TAG_REASONS]
    for value in tags.values():
        _readable(value)
    path = registry.client().download_artifacts(run.info.run_id, "summary.json", str(tmp_path))
    text = Path(path).read_text()
    _readable(text)
    summary = json.loads(text)
    assert summary["quality"]["success"] is False
    assert summary["quality"]["summary"] == quality.removeprefix("data quality: ")
    assert {f["column"] for f in summary["quality"]["failures"]} == set(BROKEN)
    assert quality in summary["reasons"] and quality in summary["decision"]["reasons"]
