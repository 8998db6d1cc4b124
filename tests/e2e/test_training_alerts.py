"""Alerts of the real training DAG reach a real SMTP server and a real Slack-style webhook on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagtools import champion, task_states
from receivers import SmtpServer, WebhookServer

pytestmark = pytest.mark.e2e
PIPELINE = "breast_cancer"  # its config routes failures and rejections to slack_mlops and smtp_mlops


def test_a_quarantined_batch_and_a_gate_rejection_are_announced(
    dagbag: Any,
    bc_batches: dict[str, Path],
    mlops_home: Path,
    alert_receivers: tuple[SmtpServer, WebhookServer],
) -> None:
    smtp_server, webhook_server = alert_receivers
    dag = dagbag.get_dag(f"{PIPELINE}_training")

    def run(conf: dict[str, Any]) -> Any:
        return dag.test(run_conf={"model": None, "reason": "", **conf})

    assert run({"data_uri": str(bc_batches["first"])}).state == "success"
    assert champion(PIPELINE) == 1
    # The Slack route also subscribes to promotions (the email route does not).
    assert webhook_server.wait_for_requests(1) and "new champion" in webhook_server.requests[0].text
    assert not smtp_server.messages
    webhook_server.requests.clear()
    smtp_server.messages.clear()

    # A corrupted batch: one failure alert per route, naming the task, the run and what was wrong.
    dag_run = run({"data_uri": str(bc_batches["nulls"])})
    assert dag_run.state == "failed" and task_states(dag_run)["validate"] == "failed"
    assert webhook_server.wait_for_requests(1) and smtp_server.wait_for_messages(1)
    (post,) = webhook_server.requests
    (mail,) = smtp_server.messages
    for text in (post.text, mail.body()):
        assert PIPELINE in text and f"{PIPELINE}_training" in text and dag_run.run_id in text
        assert "validate" in text and "quarantined" in text and "mean_radius" in text
    assert "validate failed" in mail.subject and mail.rcpt_tos == ["ml-oncology@example.com"]
    assert champion(PIPELINE) == 1
    webhook_server.requests.clear()
    smtp_server.messages.clear()

    # A rejected challenger is a warning, not a failure: the run succeeds and the routes hear about it.
    worse = {"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
    dag_run = run({"data_uri": str(bc_batches["second"]), "model": worse})
    assert dag_run.state == "success" and task_states(dag_run)["gate_rejected"] == "success"
    assert webhook_server.wait_for_requests(1) and smtp_server.wait_for_messages(1)
    assert (
        "rejected" in webhook_server.requests[0].text
        and "below the minimum" in webhook_server.requests[0].text
    )
    assert "REJECTED" in smtp_server.messages[0].subject.upper()
    assert champion(PIPELINE) == 1
