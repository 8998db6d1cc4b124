"""The native stack's process handling on the light services: what `up` starts it records and `down` stops
(whole process groups, idempotently); what already answers is used, not started; mail lands in a Maildir."""

from __future__ import annotations

import mailbox
import os
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from receivers import free_port

from mlops.tooling.stack_native import NativeStack, _group_alive, _tcp


@pytest.fixture
def native(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NativeStack:
    for name in ("REDIS", "S3", "SMTP"):
        monkeypatch.setenv(f"MLOPS_STACK_{name}_PORT", str(free_port()))
    monkeypatch.setenv("MLOPS_STACK_DATA_BUCKET", "unit-data")
    monkeypatch.setenv("MLOPS_STACK_ARTIFACT_BUCKET", "unit-artifacts")
    stack = NativeStack.prepare(tmp_path / "home")
    yield stack
    stack.down()


@pytest.mark.service
def test_up_starts_what_does_not_answer_and_down_stops_it(native: NativeStack) -> None:
    s = native.settings
    native._redis()
    native._s3()
    native._smtp()
    pids = {name: native.pid(name) for name in ("redis", "minio", "mailpit")}
    assert all(pids.values()), pids
    assert all(_tcp(port) for port in (s.redis_port, s.s3_port, s.smtp_port))
    states = {st.name: st.state for st in native.status()}
    assert states["redis"] == states["minio"] == states["mailpit"] == "healthy"

    assert sorted(native.down()) == ["mailpit", "minio", "redis"]

    assert not any(_group_alive(pid) for pid in pids.values())
    assert not any(_tcp(port) for port in (s.redis_port, s.s3_port, s.smtp_port))
    assert native.down() == []  # idempotent
    assert {st.name: st.state for st in native.status()}["redis"] == "stopped"


@pytest.mark.service
def test_a_service_that_already_answers_is_used_not_started(native: NativeStack) -> None:
    native._redis()
    again = NativeStack.load(native.home)
    first_pid = native.pid("redis")

    again._redis()

    assert again.pid("redis") == first_pid
    assert [name for name in again.started() if name == "redis"] == ["redis"]


@pytest.mark.service
def test_buckets_are_created_on_the_s3_server(native: NativeStack) -> None:
    import boto3

    native._s3()
    s = native.settings
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{s.s3_port}",
        aws_access_key_id=s.aws_access_key_id,
        aws_secret_access_key=s.aws_secret_access_key,
        region_name=s.region,
    )
    names = {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert {"unit-data", "unit-artifacts"} <= names
    native._s3()  # a second `up` finds them and changes nothing


@pytest.mark.service
def test_alert_mail_is_kept_as_files_in_the_home(native: NativeStack) -> None:
    native._smtp()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "mlops@example.com",
        "ml@example.com",
        "FAILED validate",
    )
    message.set_content("batch quarantined")
    with smtplib.SMTP("127.0.0.1", native.settings.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)

    box = mailbox.Maildir(native.home / "mail", create=False)
    deadline = time.monotonic() + 10
    while not box.keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [m["Subject"] for m in box] == ["FAILED validate"]


@pytest.mark.unit
def test_a_process_that_dies_at_start_is_reported_with_its_log(native: NativeStack) -> None:
    from mlops.errors import StackError

    native.spawn("broken", ["/bin/sh", "-c", "echo cannot bind; exit 3"])

    with pytest.raises(StackError, match="cannot bind"):
        native._wait("broken", lambda: False, timeout=10)
    assert native.pid("broken") is None


@pytest.mark.unit
def test_every_process_gets_the_stacks_settings_not_the_callers(
    native: NativeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    env = native.env("airflow-worker")
    assert env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{native.settings.mlflow_port}"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["MLOPS_HOME"] == str(native.home)
    assert env["PATH"].split(os.pathsep)[0] == str(native.bin_dir)
