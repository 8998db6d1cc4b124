"""Unit tests of mlops.airflow.alerts: message contents, routing, and delivery against real local receivers.

No scheduler: callback contexts are built by hand; connections come from ``AIRFLOW_CONN_*`` variables.
"""

from __future__ import annotations

import copy
import logging
import pickle
from types import SimpleNamespace
from typing import Any

import pytest
from receivers import SmtpServer, WebhookServer, free_port

from mlops.airflow.alerts import (
    Alert,
    FailureAlert,
    alert_from_context,
    dispatch,
    send_event,
    summarize_error,
    task_log_url,
)
from mlops.config import AlertRoute

RUN_ID = "manual__2026-11-27T10:00:00+00:00"
QUOTED_RUN_ID = "manual__2026-11-27T10%3A00%3A00%2B00%3A00"
SLACK = AlertRoute(channel="slack", conn_id="slack_mlops", events=["failure", "rejected"])
EMAIL = AlertRoute(
    channel="email", conn_id="smtp_mlops", to=["oncall@example.com"], events=["failure", "promoted"]
)


def make_ti(xcom: dict[str, Any] | None = None, **overrides: Any) -> SimpleNamespace:
    """A stand-in for Airflow's RuntimeTaskInstance with the attributes alerts read."""
    values = {
        "dag_id": "churn_training",
        "task_id": "train",
        "run_id": RUN_ID,
        "try_number": 2,
        "map_index": -1,
    }
    values.update(overrides)
    pushed = xcom or {}

    def xcom_pull(task_ids: str, key: str) -> Any:
        return pushed.get(key) if task_ids == "train" else None

    return SimpleNamespace(xcom_pull=xcom_pull, **values)


def failure_context(error: BaseException | None = None, **ti: Any) -> dict[str, Any]:
    return {"ti": make_ti(**ti), "exception": error or ValueError("holdout has 0 rows")}


@pytest.fixture(autouse=True)
def _ui_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_AIRFLOW_UI_URL", "http://airflow.test:8080/")
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://mlflow.test:5000")
    for name in ("AIRFLOW_CONN_SLACK_MLOPS", "AIRFLOW_CONN_SMTP_MLOPS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def connections(
    monkeypatch: pytest.MonkeyPatch, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    """Both connections point at the local receivers."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_MLOPS", smtp_server.uri)


def alert_logs(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mlops.airflow.alerts" and r.levelno >= level]


# Messages ---------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_failure_alert_names_pipeline_dag_task_run_try_summary_and_links() -> None:
    context = failure_context(xcom={"mlflow_run_id": "abc123", "mlflow_experiment_id": "7"})

    alert = alert_from_context("churn", context)

    assert (alert.pipeline, alert.event, alert.severity) == ("churn", "failure", "error")
    assert (alert.dag_id, alert.task_id, alert.run_id, alert.try_number) == (
        "churn_training",
        "train",
        RUN_ID,
        2,
    )
    assert alert.summary == "ValueError: holdout has 0 rows"
    assert (
        alert.log_url
        == f"http://airflow.test:8080/dags/churn_training/runs/{QUOTED_RUN_ID}/tasks/train?try_number=2"
    )
    assert alert.mlflow_url == "http://mlflow.test:5000/#/experiments/7/runs/abc123"
    text = alert.text()
    for expected in (
        "[FAILURE] churn: task train failed",
        "Pipeline: churn",
        "DAG: churn_training",
        "Task: train",
        f"Run: {RUN_ID}",
        "Try: 2",
        "Error: ValueError: holdout has 0 rows",
        f"Log: {alert.log_url}",
        f"MLflow: {alert.mlflow_url}",
    ):
        assert expected in text
    assert alert.subject() == "[mlops][FAILURE] churn: task train failed"
    body = alert.html()
    for expected in (
        "churn_training",
        ">train<",
        RUN_ID,
        ">2<",
        "ValueError: holdout has 0 rows",
        alert.log_url,
    ):
        assert expected in body


@pytest.mark.unit
def test_alert_accepts_a_pipeline_config(pipeline_config: Any) -> None:
    alert = alert_from_context(pipeline_config, failure_context())

    assert alert.pipeline == pipeline_config.name


@pytest.fixture
def pipeline_config() -> Any:
    from mlops.config import parse_config

    return parse_config(
        {
            "name": "churn",
            "task": "classification",
            "data": {"source": "data/churn.csv"},
            "target": "churned",
            "features": [{"name": "tenure", "type": "numeric"}],
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "gate": {"primary_metric": "roc_auc", "threshold": 0.5},
            "alerts": [{"channel": "slack", "conn_id": "slack_mlops"}],
        }
    )


@pytest.mark.unit
def test_mlflow_link_falls_back_to_the_experiment_search_then_to_none() -> None:
    only_run = alert_from_context("churn", failure_context(xcom={"mlflow_run_id": "abc123"}))
    nothing = alert_from_context("churn", failure_context())

    assert only_run.mlflow_url == "http://mlflow.test:5000/#/experiments?experimentSearchFilter=churn"
    assert only_run.details["mlflow_run_id"] == "abc123"
    assert nothing.mlflow_url is None
    assert "MLflow" not in nothing.text()


@pytest.mark.unit
def test_log_url_of_a_mapped_task_and_the_default_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_AIRFLOW_UI_URL")
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)

    assert (
        task_log_url("d", "r 1", "t", 3, 4)
        == "http://127.0.0.1:8080/dags/d/runs/r%201/tasks/t/mapped/4?try_number=3"
    )
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.corp/")
    assert task_log_url("d", "r", "t", None) == "https://airflow.corp/dags/d/runs/r/tasks/t"


@pytest.mark.unit
def test_summary_keeps_the_first_lines_and_truncates_long_messages() -> None:
    long = summarize_error(RuntimeError("x" * 1000))
    multi = summarize_error(ValueError("first\n\nsecond\nthird\nfourth\nfifth"))

    assert len(long) <= 300 and long.startswith("RuntimeError: xxx") and long.endswith("…")
    assert multi == "ValueError: first\nsecond\nthird …"
    assert summarize_error(KeyError()) == "KeyError"
    assert summarize_error("Task received SIGTERM") == "Task received SIGTERM"
    assert summarize_error(None) == ""


@pytest.mark.unit
def test_a_dag_level_context_without_exception_names_the_failed_task() -> None:
    context = {"ti": make_ti(), "dag": SimpleNamespace(dag_id="churn_training"), "reason": "task_failure"}

    alert = alert_from_context("churn", context)

    assert alert.title == "DAG run of churn_training failed at task train"
    assert alert.summary == "task train failed; the error is in its log"
    assert alert.details["reason"] == "task_failure"


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"dag": SimpleNamespace(dag_id="churn_training"), "run_id": RUN_ID, "reason": "timed_out"},
        {"ti": object(), "exception": "boom"},
        {"ti": SimpleNamespace(dag_id="d", task_id="t", run_id="r", try_number="2", xcom_pull=None)},
        None,
    ],
    ids=["empty", "dag-only", "odd-ti", "broken-xcom", "none"],
)
@pytest.mark.unit
def test_building_an_alert_never_raises_on_partial_contexts(context: dict[str, Any] | None) -> None:
    alert = alert_from_context("churn", context)  # type: ignore[arg-type]

    assert alert.pipeline == "churn" and alert.title and alert.summary
    assert "Pipeline: churn" in alert.text()


@pytest.mark.unit
def test_xcom_errors_only_drop_the_mlflow_link() -> None:
    def xcom_pull(**_: Any) -> Any:
        raise ImportError("cannot import name 'SUPERVISOR_COMMS'")

    ti = make_ti()
    ti.xcom_pull = xcom_pull
    alert = alert_from_context("churn", {"ti": ti, "exception": ValueError("boom")})

    assert alert.mlflow_url is None
    assert alert.log_url and alert.summary == "ValueError: boom"


@pytest.mark.unit
def test_slack_text_escapes_control_characters_and_html_escapes_everything() -> None:
    alert = alert_from_context("churn", failure_context(ValueError("<!channel> a & b <script>")))

    assert "&lt;!channel&gt; a &amp; b &lt;script&gt;" in alert.text(slack=True)
    assert "<!channel>" in alert.text()  # the log keeps the message as it is
    assert "<script>" not in alert.html() and "&lt;script&gt;" in alert.html()


@pytest.mark.unit
def test_event_alerts_have_their_own_severity_and_subject() -> None:
    rejected = alert_from_context(
        "churn", {}, event="rejected", title="v7 rejected", summary="roc_auc 0.71 < 0.80"
    )
    promoted = alert_from_context("churn", {}, event="promoted", title="v8 is champion", summary="")

    assert (rejected.severity, rejected.subject()) == ("warning", "[mlops][WARNING] churn: v7 rejected")
    assert "Summary: roc_auc 0.71 < 0.80" in rejected.text()
    assert (promoted.severity, promoted.subject()) == ("info", "[mlops][INFO] churn: v8 is champion")


# Delivery ---------------------------------------------------------------------------------------------


@pytest.mark.service
def test_failure_goes_to_slack_and_email(
    connections: None, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    alert = alert_from_context("churn", failure_context())

    delivered = dispatch(alert, [SLACK, EMAIL], {})

    assert delivered == ["slack:slack_mlops", "email:smtp_mlops"]
    assert webhook_server.wait_for_requests(1) and smtp_server.wait_for_messages(1)
    post = webhook_server.requests[0]
    assert post.path == "/services/T000/B000/XXXX"
    assert "Task: train" in post.text and "ValueError: holdout has 0 rows" in post.text
    mail = smtp_server.messages[0]
    assert mail.subject == "[mlops][FAILURE] churn: task train failed"
    assert mail.rcpt_tos == ["oncall@example.com"] and mail.mail_from == "mlops@example.com"
    assert "ValueError: holdout has 0 rows" in mail.body()


@pytest.mark.service
def test_routes_receive_only_the_events_they_subscribe_to(
    connections: None, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    rejected = send_event("churn", [SLACK, EMAIL], "rejected", "v7 rejected", "roc_auc below 0.80", {})
    promoted = send_event("churn", [SLACK, EMAIL], "promoted", "v8 is champion", "roc_auc 0.86", {})

    assert rejected == ["slack:slack_mlops"]
    assert promoted == ["email:smtp_mlops"]
    assert webhook_server.wait_for_requests(1) and smtp_server.wait_for_messages(1)
    assert len(webhook_server.requests) == 1 and "v7 rejected" in webhook_server.requests[0].text
    assert (
        len(smtp_server.messages) == 1
        and smtp_server.messages[0].subject == "[mlops][INFO] churn: v8 is champion"
    )


@pytest.mark.unit
def test_an_event_nobody_subscribes_to_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    delivered = send_event("churn", [SLACK], "promoted", "v8 is champion", "roc_auc 0.86", None)

    assert delivered == ["log"]
    assert any("[INFO] churn: v8 is champion" in m for m in alert_logs(caplog))


@pytest.mark.unit
def test_no_routes_writes_the_whole_alert_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    alert = alert_from_context("churn", failure_context())

    assert dispatch(alert, [], {}) == ["log"]
    assert alert.text() in "\n".join(alert_logs(caplog))


@pytest.mark.unit
def test_a_missing_connection_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    alert = alert_from_context("churn", failure_context())

    delivered = dispatch(alert, [SLACK, EMAIL], {})

    assert delivered == ["log"]
    logs = "\n".join(alert_logs(caplog))
    assert "slack:slack_mlops: connection 'slack_mlops' is not defined" in logs
    assert "email:smtp_mlops: connection 'smtp_mlops' is not defined" in logs
    assert logs.count(alert.text()) == 1  # the alert once, not once per route


@pytest.mark.service
def test_a_failing_webhook_is_logged_and_the_email_still_goes_out(
    connections: None,
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    webhook_server.status = 500
    alert = alert_from_context("churn", failure_context())

    delivered = dispatch(alert, [SLACK, EMAIL], {})

    assert delivered == ["email:smtp_mlops", "log"]
    assert webhook_server.wait_for_requests(1)  # it was tried
    assert smtp_server.wait_for_messages(1)
    errors = alert_logs(caplog, logging.ERROR)
    assert len(errors) == 1 and errors[0].startswith("Alert route slack:slack_mlops: delivery failed")
    assert any(alert.text() in m for m in alert_logs(caplog))


@pytest.mark.service
def test_an_smtp_server_that_is_down_does_not_stop_slack(
    monkeypatch: pytest.MonkeyPatch, webhook_server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_MLOPS", SmtpServer(port=free_port()).uri)  # nothing listens there
    alert = alert_from_context("churn", failure_context())

    delivered = dispatch(alert, [EMAIL, SLACK], {})

    assert delivered == ["slack:slack_mlops", "log"]
    assert webhook_server.wait_for_requests(1)
    assert any(
        m.startswith("Alert route email:smtp_mlops: delivery failed")
        for m in alert_logs(caplog, logging.ERROR)
    )


# The callback -----------------------------------------------------------------------------------------


@pytest.mark.service
def test_failure_alert_is_a_cheap_picklable_deep_copyable_callable(
    connections: None, webhook_server: WebhookServer
) -> None:
    callback = FailureAlert("churn", [SLACK])

    for clone in (pickle.loads(pickle.dumps(callback)), copy.deepcopy(callback)):
        assert clone == callback and clone.routes == (SLACK,)
    assert repr(callback) == "FailureAlert(pipeline='churn', routes=[slack:slack_mlops])"
    assert callback(failure_context()) == ["slack:slack_mlops"]
    assert webhook_server.wait_for_requests(1)


@pytest.mark.unit
def test_failure_alert_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: Any, **__: Any) -> Alert:
        raise RuntimeError("bug in the alert builder")

    monkeypatch.setattr("mlops.airflow.alerts.alert_from_context", broken)

    assert FailureAlert("churn", [SLACK])(failure_context()) == []
    assert any("Could not send the failure alert of pipeline churn" in m for m in alert_logs(caplog))
