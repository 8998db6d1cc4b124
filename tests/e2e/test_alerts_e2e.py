"""End to end: a failing task alerts Slack and email through ``FailureAlert`` under ``dag.test()``.

A real SMTP server (aiosmtpd) and a real webhook receiver listen on 127.0.0.1; the connections come from
``AIRFLOW_CONN_*`` environment variables, as in production. The same ``FailureAlert`` is the task-level
callback (through ``default_args``) and the DAG-level one, so one failure sends two alerts per route.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from receivers import SmtpServer, WebhookServer

from mlops.airflow.alerts import FailureAlert
from mlops.config import AlertRoute

pytestmark = pytest.mark.e2e

PIPELINE = "alerts_e2e"
DAG_ID = "alerts_e2e_training"
ERROR = "holdout has 0 rows after filtering; check the batch"
MLFLOW_RUN = "0123456789abcdef"
MLFLOW_EXPERIMENT = "42"


def _serialize_to_db(dag: Any) -> None:
    """Write a DAG defined in a test (in no bundle) to the metadata DB, as the DAG processor would.

    ``dag.test()`` refuses to create a run for a DAG that is not serialized in the DB.
    """
    from types import SimpleNamespace

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = SimpleNamespace(
        dags={dag.dag_id: dag}, import_errors={}, dag_warnings=set(), bundle_path=None, file_last_changed={}
    )
    sync_bag_to_db(bag, "dags-folder", None)


def _failing_dag(alert: FailureAlert, dag_alert: FailureAlert | None = None) -> Any:
    from airflow.sdk import DAG, get_current_context, task

    with DAG(
        dag_id=DAG_ID,
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        default_args={"on_failure_callback": alert, "retries": 0},
        on_failure_callback=dag_alert or alert,
        tags=["test"],
    ) as dag:

        @task
        def train() -> None:
            ti = get_current_context()["ti"]
            ti.xcom_push(key="mlflow_run_id", value=MLFLOW_RUN)
            ti.xcom_push(key="mlflow_experiment_id", value=MLFLOW_EXPERIMENT)
            raise ValueError(ERROR)

        train()
    _serialize_to_db(dag)
    return dag


def test_a_failing_task_alerts_slack_and_email_once(
    airflow_db: Path, smtp_server: SmtpServer, webhook_server: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_MLOPS", smtp_server.uri)
    monkeypatch.setenv("MLOPS_AIRFLOW_UI_URL", "http://airflow.example:8080")
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://mlflow.example:5000")
    routes = [
        AlertRoute(channel="slack", conn_id="slack_mlops", events=["failure"]),
        AlertRoute(channel="email", conn_id="smtp_mlops", to=["oncall@example.com"], events=["failure"]),
    ]
    dag = _failing_dag(FailureAlert(PIPELINE, routes), FailureAlert(PIPELINE, routes, dag_level=True))

    dag_run = dag.test()

    assert dag_run.state == "failed"
    assert webhook_server.wait_for_requests(1, timeout=5), webhook_server.requests
    assert smtp_server.wait_for_messages(1, timeout=5), smtp_server.messages
    time.sleep(0.5)  # a second (DAG-level) alert would have arrived by now
    # The DAG-level callback stays quiet: the task's own alert, with the exception, already went out.
    assert len(webhook_server.requests) == 1 and len(smtp_server.messages) == 1
    run_id = dag_run.run_id
    log_url = f"http://airflow.example:8080/dags/{DAG_ID}/runs/"
    mlflow_url = f"http://mlflow.example:5000/#/experiments/{MLFLOW_EXPERIMENT}/runs/{MLFLOW_RUN}"

    (post,) = webhook_server.requests
    assert post.path == "/services/T000/B000/XXXX"
    for expected in (
        PIPELINE,
        f"DAG: {DAG_ID}",
        "Task: train",
        f"Run: {run_id}",
        "Try: 1",
        log_url,
        mlflow_url,
    ):
        assert expected in post.text
    assert f"ValueError: {ERROR}" in post.text

    (mail,) = smtp_server.messages
    assert mail.subject == f"[mlops][FAILURE] {PIPELINE}: task train failed"
    assert mail.rcpt_tos == ["oncall@example.com"]
    assert mail.mail_from == "mlops@example.com"
    body = mail.body()
    for expected in (PIPELINE, DAG_ID, ">train<", run_id, ">1<", log_url, mlflow_url, f"ValueError: {ERROR}"):
        assert expected in body


def test_the_dag_level_alert_speaks_when_the_task_is_silent(
    airflow_db: Path, webhook_server: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a task-level callback, the DAG-level one reports the failed run (as for a run timeout)."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    routes = [AlertRoute(channel="slack", conn_id="slack_mlops", events=["failure"])]
    dag = _failing_dag(FailureAlert(PIPELINE, []), FailureAlert(PIPELINE, routes))

    dag_run = dag.test()

    assert dag_run.state == "failed"
    assert webhook_server.wait_for_requests(1, timeout=5), webhook_server.requests
    (post,) = webhook_server.requests
    assert f"DAG run of {DAG_ID} failed at task train" in post.text
    assert "reason: task_failure" in post.text


def test_failure_without_connections_is_logged_and_the_run_still_ends(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The embedded default: routes whose connections are not defined fall back to the log, nothing raises."""
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_MLOPS", raising=False)
    caplog.set_level(logging.INFO)
    dag = _failing_dag(FailureAlert(PIPELINE, [AlertRoute(channel="slack", conn_id="slack_mlops")]))

    dag_run = dag.test()

    assert dag_run.state == "failed"
    ours = [
        r.getMessage()
        for r in caplog.records
        if r.name == "mlops.airflow.alerts" and r.levelno == logging.WARNING
    ]
    assert sum("connection 'slack_mlops' is not defined" in m for m in ours) == 2  # task and DAG level
    assert any(f"ValueError: {ERROR}" in m and "Task: train" in m for m in ours)
    assert not [r for r in caplog.records if "Callback failed" in r.getMessage()]
