"""The monitoring DAG through Airflow (``dag.test()``): real inference log files, real Evidently reports, a real
MLflow store, real alert receivers; and the retraining it requests, run by the training DAG."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagtools import REPO, champion, parse_dags, task_states
from receivers import SmtpServer, WebhookServer
from served import log_served

pytestmark = pytest.mark.e2e
PIPELINE = "breast_cancer"
DAY = datetime(2026, 11, 1, tzinfo=UTC)
ROWS = 400


def _config_dir(tmp_path: Path) -> Path:
    """breast_cancer.yaml with a monitoring section sized for small windows (labels needed, cooldown 72 h)."""
    config = yaml.safe_load((REPO / "include" / "pipelines" / f"{PIPELINE}.yaml").read_text())
    config["monitoring"] = {
        "min_rows": 30,
        "performance": {"min_labels": 50},
        "retrain": {
            "consecutive_windows": 2,
            "cooldown_hours": 72,
            "min_new_labels": 100,
            "data": "recent",
        },
    }
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return pipelines


def _frames(drift: float, count: int, seed: int) -> list[Any]:
    from mlops_datagen import generate_frames

    return [
        frame
        for _, frame in generate_frames(
            PIPELINE, batches=count, rows=ROWS, seed=seed, feature_drift=drift, drift_from=0
        )
    ]


def _with_a_champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: Path) -> tuple[Any, Any, Any]:
    """The test's pipeline config in place, its DAGs parsed, and champion v1 trained on ``batch``."""
    from mlops.config import load_config

    pipelines = _config_dir(tmp_path)
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    bag = parse_dags()
    assert not bag.import_errors, bag.import_errors
    training = bag.get_dag(f"{PIPELINE}_training")
    first = training.test(run_conf={"data_uri": str(batch), "model": None, "reason": ""})
    assert first.state == "success" and champion(PIPELINE) == 1
    return load_config(pipelines / f"{PIPELINE}.yaml"), bag, training


def _monitor(bag: Any, start: datetime, end: datetime) -> tuple[Any, dict[str, str], dict[str, Any]]:
    dag_run = bag.get_dag(f"{PIPELINE}_monitoring").test(
        run_conf={"start": start.isoformat(), "end": end.isoformat()}
    )
    states = task_states(dag_run)
    outcome = {}
    for ti in dag_run.get_task_instances():
        if ti.task_id == "analyze" and str(ti.state) == "success":
            outcome = ti.xcom_pull(task_ids="analyze")
    return dag_run, states, outcome


def _asset_events() -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.name == f"{PIPELINE}_retrain")
                .order_by(AssetEvent.id)
            )
        )


def test_drift_is_detected_explained_and_retrained_once(
    airflow_db: Path,
    mlops_home: Path,
    tmp_path: Path,
    bc_batches: dict[str, Path],
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops import registry

    before = len(_asset_events())
    config, bag, training = _with_a_champion(tmp_path, monkeypatch, bc_batches["first"])
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_MLOPS", smtp_server.uri)

    # A window like the training data: ok, no alert, no retraining; a report and a summary in MLflow.
    log_served(config, _frames(0.0, 1, seed=11)[0], DAY, "w1", timedelta(hours=30))
    dag_run, states, outcome = _monitor(bag, DAY, DAY + timedelta(days=1))
    assert dag_run.state == "success", states
    assert outcome["status"] == "ok", outcome["reasons"]
    assert states["request_retraining"] == "skipped" and states["done"] == "success"
    client = registry.client()
    run = client.get_run(outcome["mlflow_run_id"])
    assert run.data.tags["mlops.monitoring.decision"] == "ok"
    assert run.data.tags["mlops.model_version"] == "1"
    assert {f"drift.{name}" for name in config.feature_names} <= set(run.data.metrics)
    assert "live.roc_auc" in run.data.metrics  # the labels arrived (late) and were scored
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "summary.json"} <= artifacts
    html = Path(client.download_artifacts(run.info.run_id, "report.html", str(tmp_path))).read_text()
    assert "mean_radius" in html and len(html) > 100_000  # Evidently's self-contained report
    summary = json.loads(
        Path(client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))).read_text()
    )
    assert summary["rows"] == ROWS and summary["labelled_rows"] == ROWS
    assert summary["performance"]["metric"] == "roc_auc"
    assert not webhook_server.requests and not smtp_server.messages

    # Drift: the first drifted window warns (1 of the 2 needed) and says which features moved.
    drifted = _frames(2.0, 4, seed=12)
    log_served(config, drifted[0], DAY + timedelta(days=1), "w2", timedelta(hours=30))
    dag_run, states, outcome = _monitor(bag, DAY + timedelta(days=1), DAY + timedelta(days=2))
    assert outcome["status"] == "warn" and states["request_retraining"] == "skipped"
    assert any("1 of the 2" in reason for reason in outcome["reasons"])
    assert webhook_server.wait_for_requests(1) and smtp_server.wait_for_messages(1)
    alert = webhook_server.requests[0].text
    assert "mean_radius" in alert or "mean_area" in alert
    assert "report" in alert
    webhook_server.requests.clear()
    smtp_server.messages.clear()

    # The second in a row: retrain. The Asset event carries the data, the reason and the training window.
    log_served(config, drifted[1], DAY + timedelta(days=2), "w3", timedelta(hours=30))
    dag_run, states, outcome = _monitor(bag, DAY + timedelta(days=2), DAY + timedelta(days=3))
    assert outcome["status"] == "retrain", outcome["reasons"]
    assert states["request_retraining"] == "success"
    events = _asset_events()[before:]
    assert len(events) == 1
    request = events[0].extra
    assert request["trigger"] == "drift" and request["training_window"] == "latest"
    assert request["reason"].startswith("drift: ")
    assert Path(request["data_uri"].removeprefix("file://")).exists()
    assert webhook_server.wait_for_requests(1) and "retraining requested" in webhook_server.requests[0].text
    webhook_server.requests.clear()
    smtp_server.messages.clear()

    # Still drifted (the retrained model is not serving yet): a new streak starts, then meets the cooldown.
    log_served(config, drifted[2], DAY + timedelta(days=3), "w4", timedelta(hours=30))
    dag_run, states, outcome = _monitor(bag, DAY + timedelta(days=3), DAY + timedelta(days=4))
    assert outcome["status"] == "warn" and any("1 of the 2" in r for r in outcome["reasons"])
    log_served(config, drifted[3], DAY + timedelta(days=4), "w5", timedelta(hours=30))
    dag_run, states, outcome = _monitor(bag, DAY + timedelta(days=4), DAY + timedelta(days=5))
    assert outcome["status"] == "warn" and any("cooldown until" in r for r in outcome["reasons"])
    assert len(_asset_events()) == before + 1  # exactly one retraining

    # The scheduler would start the training DAG on the event; its extra becomes the run's request.
    retrain = training.test(run_conf={"model": None, **request})
    states = task_states(retrain)
    assert retrain.state == "success", states
    version = registry.get_version(PIPELINE, 2)
    assert version.tags["mlops.trigger_reason"] == request["reason"]
    assert version.tags["mlops.trigger"] == "drift"
    assert states["deploy"] == "success" and champion(PIPELINE) == 2  # the gate let it through
    webhook_server.requests.clear()

    # Had the gate refused the retrained model, the alert says that the drift persists.
    dummy = {"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
    rejected = training.test(run_conf={**request, "model": dummy})
    assert task_states(rejected)["gate_rejected"] == "success" and champion(PIPELINE) == 2
    assert webhook_server.wait_for_requests(1)
    assert "drift persists, retrained model rejected" in webhook_server.requests[-1].text


def test_empty_window_corrupted_log_and_missing_reference(
    airflow_db: Path,
    mlops_home: Path,
    tmp_path: Path,
    bc_batches: dict[str, Path],
    webhook_server: WebhookServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops import registry
    from mlops.data.inference_log import inference_log_uri

    config, bag, _ = _with_a_champion(tmp_path, monkeypatch, bc_batches["first"])
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())

    # Nothing served in the window: a clear "no data", not a failure, and no alert.
    dag_run, states, outcome = _monitor(bag, DAY, DAY + timedelta(days=1))
    assert dag_run.state == "success", states
    assert outcome["status"] == "no_data" and "0 predictions" in outcome["reasons"][0]
    assert not webhook_server.requests

    # A corrupted part of the log: the run fails, the alert names the file; nothing is skipped silently.
    log_served(config, _frames(0.0, 1, seed=13)[0], DAY + timedelta(days=1), "ok", None)
    root = Path(inference_log_uri(PIPELINE).removeprefix("file://"))
    broken = root / "predictions" / f"pipeline={PIPELINE}" / "date=2026-11-02" / "part-broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    dag_run, states, _ = _monitor(bag, DAY + timedelta(days=1), DAY + timedelta(days=2))
    assert dag_run.state == "failed" and states["analyze"] == "failed"
    assert webhook_server.wait_for_requests(1)
    assert "part-broken.parquet" in webhook_server.requests[0].text
    broken.unlink()
    webhook_server.requests.clear()

    # The champion's reference is gone: a clear error and an alert.
    run_id = registry.get_version(PIPELINE, 1).run_id
    artifact_dir = Path(registry.client().get_run(run_id).info.artifact_uri.removeprefix("file://"))
    (artifact_dir / "monitoring" / "reference.parquet").unlink()
    dag_run, states, _ = _monitor(bag, DAY + timedelta(days=1), DAY + timedelta(days=2))
    assert dag_run.state == "failed" and states["analyze"] == "failed"
    assert webhook_server.wait_for_requests(1)
    assert "no reference for model version 1" in webhook_server.requests[0].text
