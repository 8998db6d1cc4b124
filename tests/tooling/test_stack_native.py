"""The native stack's process handling on the light services: what `up` starts it records and `down` stops
(whole process groups, idempotently, saying what it stopped); what already answers is used, not started; mail
lands in a Maildir; `down` and `status` find the stack from its own state file, also after the documented
`eval "$(mlops stack env)"`."""

from __future__ import annotations

import mailbox
import os
import shlex
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from receivers import free_port

from mlops.tooling.cli import main
from mlops.tooling.stack_native import NativeStack, _group_alive, _tcp, locate_home


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
    pids = {name: native.pid(name) for name in ("redis", "s3", "smtp")}
    assert all(pids.values()), pids
    assert all(_tcp(port) for port in (s.redis_port, s.s3_port, s.smtp_port))
    states = {st.label: st.state for st in native.status()}
    # Natively the S3 API is moto and the SMTP server aiosmtpd: the status names them so (compose: MinIO, Mailpit).
    assert states["redis"] == states["s3 (moto)"] == states["smtp (aiosmtpd)"] == "healthy"

    said: list[str] = []
    assert sorted(native.down(progress=said.append)) == ["redis", "s3", "smtp"]
    assert sorted(said) == sorted(f"stopped {name} (pid {pid})" for name, pid in pids.items())

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


# Finding the stack ----------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_the_stack_home_is_found_from_the_users_home_and_from_inside_the_stack_home(tmp_path: Path) -> None:
    user_home = tmp_path / "mlops"
    assert locate_home(None, user_home) == user_home.resolve() / "stack"  # nothing there yet: the default

    NativeStack.prepare(user_home / "stack")  # what `up` does first: writes stack.env

    stack_home = (user_home / "stack").resolve()
    assert locate_home(None, user_home) == stack_home
    # `mlops stack env` exports MLOPS_HOME=<stack home>: from there it is the same stack, not <stack home>/stack.
    assert locate_home(None, stack_home) == stack_home
    elsewhere = tmp_path / "elsewhere"
    assert locate_home(elsewhere, stack_home) == elsewhere.resolve()  # --home wins


def _apply_stack_env(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """What `eval "$(mlops stack env --home HOME)"` does to a shell."""
    assert main(["stack", "env", "--home", str(home)]) == 0
    for line in capsys.readouterr().out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        monkeypatch.setenv(key, shlex.split(value)[0] if value else "")


@pytest.mark.unit
def test_down_after_the_documented_eval_stops_the_stack_and_says_what_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    user_home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(user_home))
    native = NativeStack.prepare(user_home / "stack")
    pid = native.spawn("sleeper", ["sleep", "300"])
    _apply_stack_env(native.home, monkeypatch, capsys)
    assert os.environ["MLOPS_HOME"] == str(native.home)  # the stack home itself, not the user's home

    assert main(["stack", "down"]) == 0

    out = capsys.readouterr().out
    assert f"stopping the stack in {native.home}" in out
    assert f"stopped sleeper (pid {pid})" in out
    assert not _group_alive(pid)
    # Again: nothing runs, and it says so.
    assert main(["stack", "down"]) == 0
    assert f"nothing to stop: no process started by `mlops stack up` in {native.home} is running" in (
        capsys.readouterr().out
    )


@pytest.mark.unit
def test_down_and_status_refuse_a_folder_that_holds_no_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "nothing"))
    for action in ("down", "status", "env"):
        assert main(["stack", action]) == 1
        captured = capsys.readouterr()
        assert f"no native stack in {(tmp_path / 'nothing' / 'stack').resolve()}" in captured.err
        assert captured.out == ""  # `eval "$(mlops stack env)"` gets nothing to run
