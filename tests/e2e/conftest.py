"""Fixtures of the end-to-end tests: the real DAGs, and sample batches written once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagtools import parse_dags
from receivers import SmtpServer, WebhookServer


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path) -> Any:
    bag = parse_dags()
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="session")
def bc_batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two dated breast-cancer batches, and a corrupted copy of the second per corruption kind."""
    from mlops_datagen import CORRUPTIONS, corrupt_batch, generate_batches

    landing = tmp_path_factory.mktemp("landing")
    first, second = generate_batches("breast_cancer", landing, batches=2, seed=7)
    batches = {"first": first, "second": second}
    for kind in CORRUPTIONS:
        batches[kind] = corrupt_batch(second, landing / f"corrupt-{kind}.csv", kind)
    return batches


@pytest.fixture
def alert_receivers(
    smtp_server: SmtpServer, webhook_server: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> tuple[SmtpServer, WebhookServer]:
    """The pipelines' two alert connections (slack_mlops, smtp_mlops) pointed at real receivers on 127.0.0.1."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_MLOPS", webhook_server.slack_connection())
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_MLOPS", smtp_server.uri)
    return smtp_server, webhook_server
