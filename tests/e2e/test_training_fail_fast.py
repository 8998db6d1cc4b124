"""Errors that cannot change fail the training DAG's task at once, through Airflow (``dag.test()``).

A bad estimator parameter is deterministic: ``train`` fails on its first try (state ``failed``, never
``up_for_retry``, although the pipeline allows 2 retries with backoff) and the failure alert goes out once,
naming the estimator, the parameter and what scikit-learn said.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from dagtools import model_versions
from receivers import SmtpServer, WebhookServer

pytestmark = pytest.mark.e2e
PIPELINE = "breast_cancer"  # airflow.retries: 2; failures go to slack_mlops and smtp_mlops


def test_a_bad_estimator_parameter_fails_train_on_its_first_try_and_alerts_once(
    dagbag: Any,
    bc_batches: dict[str, Path],
    mlops_home: Path,
    alert_receivers: tuple[SmtpServer, WebhookServer],
) -> None:
    smtp_server, webhook_server = alert_receivers
    dag = dagbag.get_dag(f"{PIPELINE}_training")
    assert dag.get_task("train").retries == 2  # what a transient error would get
    bad = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": -3}}

    started = time.monotonic()
    dag_run = dag.test(
        run_conf={"data_uri": str(bc_batches["first"]), "model": bad, "reason": "bad parameter"}
    )
    elapsed = time.monotonic() - started

    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert dag_run.state == "failed"
    assert str(tis["ingest"].state) == "success" and str(tis["validate"].state) == "success"
    train = tis["train"]
    assert str(train.state) == "failed", train.state  # not up_for_retry
    assert train.try_number == 1
    assert all(str(tis[t].state) == "upstream_failed" for t in ("register", "gate", "deploy"))
    assert not model_versions(PIPELINE)
    assert elapsed < 120, f"{elapsed:.0f} s: a retry's backoff was waited for?"

    # One failure alert per route (the DAG-level callback stays quiet), with what to fix.
    assert webhook_server.wait_for_requests(1) and smtp_server.wait_for_messages(1)
    time.sleep(0.5)  # a second alert would have arrived by now
    assert len(webhook_server.requests) == 1 and len(smtp_server.messages) == 1
    for text in (webhook_server.requests[0].text, smtp_server.messages[0].body()):
        assert "train" in text and dag_run.run_id in text
        assert "sklearn.ensemble.RandomForestClassifier" in text
        assert "n_estimators" in text and "-3" in text
        assert "must be an int in the range [1, inf)" in text  # scikit-learn's own words
    assert "Try: 1" in webhook_server.requests[0].text
