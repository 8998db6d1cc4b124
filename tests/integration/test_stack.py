"""The production stack on real services, natively on 127.0.0.1 (``mlops stack up`` in a temporary home).

Postgres (the machine's, two fresh databases), Redis (the machine's, a queue of our own), moto's S3 server,
an SMTP server, an MLflow server on Postgres with artifacts in S3, Airflow with the CeleryExecutor (API
server, scheduler, DAG processor, triggerer, Celery workers) and the model server. Everything goes through
the stack's public surfaces: Airflow's REST API with the official client, MlflowClient against the tracking
server, boto3 against the S3 API, the mailbox of the SMTP server.

The tests run in order and share the stack: a first champion; a corrupted batch that fails at validation and
alerts by e-mail; a Celery worker killed in the middle of training, whose task retries on the other worker.
"""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlops.tooling.stack_native import NativeStack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"
DAG_ID = f"{PIPELINE}_training"
RUN_TIMEOUT = 300


# The stack (tests/integration/conftest.py starts it with these settings) ----------------------------------------
def stack_env(home: Path, settings: dict[str, str]) -> dict[str, str]:
    """breast_cancer as shipped, but manual only, quick retries, alerts by e-mail only; one task per worker, and a
    killed worker's task noticed after 20 s without a heartbeat (default 300)."""
    config = yaml.safe_load((REPO / "include" / "pipelines" / f"{PIPELINE}.yaml").read_text())
    config["schedule"] = None
    config["airflow"].update(retries=2, retry_delay_seconds=2)
    config["alerts"] = [route for route in config["alerts"] if route["channel"] == "email"]
    folder = home / "pipelines"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return {
        "MLOPS_STACK_TASK_HEARTBEAT_TIMEOUT": "20",
        "MLOPS_STACK_WORKER_CONCURRENCY": "1",
        "MLOPS_PIPELINES_DIR": str(folder),
    }


@pytest.fixture(scope="module")
def landing(stack: NativeStack, s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Batches delivered to the S3 landing area: two good ones and a corrupted copy of the second."""
    from mlops_datagen import corrupt_batch, generate_batches

    folder = tmp_path_factory.mktemp("landing")
    first, second = generate_batches(PIPELINE, folder, batches=2, seed=11)
    files = {
        "first": first,
        "second": second,
        "corrupt": corrupt_batch(second, folder / "corrupt.csv", "nulls"),
    }
    bucket = stack.settings.data_bucket
    uris = {}
    for name, path in files.items():
        key = f"landing/{PIPELINE}/{path.name}"
        s3.upload_file(str(path), bucket, key)
        uris[name] = f"s3://{bucket}/{key}"
    return uris


# Helpers -------------------------------------------------------------------------------------------------------
def _trigger(api: Any, conf: dict[str, Any]) -> str:
    from airflow_client.client.api.dag_api import DAGApi
    from airflow_client.client.api.dag_run_api import DagRunApi
    from airflow_client.client.models import DAGPatchBody, TriggerDAGRunPostBody

    deadline = time.monotonic() + 120
    while True:  # the DAG processor may not have parsed the file yet
        try:
            DAGApi(api).patch_dag(DAG_ID, DAGPatchBody(is_paused=False))
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    run = DagRunApi(api).trigger_dag_run(
        DAG_ID, TriggerDAGRunPostBody(logical_date=None, conf={"model": None, "reason": "stack test", **conf})
    )
    return run.dag_run_id


def _wait_run(
    api: Any, run_id: str, timeout: float = RUN_TIMEOUT, on_poll: Callable[[], None] | None = None
) -> str:
    from airflow_client.client.api.dag_run_api import DagRunApi

    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = str(DagRunApi(api).get_dag_run(DAG_ID, run_id).state.value)
        if state in ("success", "failed"):
            return state
        if on_poll:
            on_poll()
        time.sleep(1)
    raise AssertionError(f"{DAG_ID} run {run_id} still {state} after {timeout:.0f} s: {_states(api, run_id)}")


def _task_instances(api: Any, run_id: str) -> dict[str, Any]:
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    found = TaskInstanceApi(api).get_task_instances(DAG_ID, run_id).task_instances
    return {ti.task_id: ti for ti in found}


def _states(api: Any, run_id: str) -> dict[str, str | None]:
    return {k: (ti.state.value if ti.state else None) for k, ti in _task_instances(api, run_id).items()}


def _versions(mlflow_client: Any) -> list[Any]:
    return sorted(mlflow_client.search_model_versions(f"name='{PIPELINE}'"), key=lambda v: int(v.version))


def _keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _worker_of(pid: int, workers: dict[str, int]) -> str:
    """The worker (by name) whose process tree holds ``pid``; '?' when the process is gone or foreign."""
    by_pid = {p: name for name, p in workers.items()}
    current: int | None = pid
    while current and current > 1:
        if current in by_pid:
            return by_pid[current]
        current = _parent(current)
    return "?"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        parent = _parent(int(stat.parent.name))
        if parent:
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# Tests ---------------------------------------------------------------------------------------------------------
def test_the_api_refuses_anonymous_requests(stack: NativeStack) -> None:
    base = f"http://127.0.0.1:{stack.settings.airflow_port}"
    assert httpx.get(f"{base}/api/v2/dags", timeout=30).status_code == 401
    wrong = {"username": stack.settings.airflow_admin_user, "password": "not-the-password"}
    assert httpx.post(f"{base}/auth/token", json=wrong, timeout=30).status_code == 401


def test_a_first_batch_trains_a_champion_through_celery_with_artifacts_in_s3(
    stack: NativeStack, airflow_api: Any, mlflow_client: Any, s3: Any, landing: dict[str, str]
) -> None:
    run_id = _trigger(airflow_api, {"data_uri": landing["first"]})

    assert _wait_run(airflow_api, run_id) == "success", _states(airflow_api, run_id)
    tis = _task_instances(airflow_api, run_id)
    assert {ti.executor or "CeleryExecutor" for ti in tis.values()} == {"CeleryExecutor"}
    assert {ti.queue for ti in tis.values()} == {stack.settings.celery_queue}
    assert tis["deploy"].state.value == "success"

    champion = mlflow_client.get_model_version_by_alias(PIPELINE, "champion")
    assert champion.version == "1"
    assert champion.tags["airflow.run_id"] == run_id
    artifacts = stack.settings.artifact_bucket
    model = mlflow_client.get_logged_model(champion.source.removeprefix("models:/"))
    assert model.artifact_location.startswith(f"s3://{artifacts}/"), model.artifact_location
    model_keys = _keys(s3, artifacts, model.artifact_location.removeprefix(f"s3://{artifacts}/"))
    assert any(k.endswith("/MLmodel") for k in model_keys), model_keys
    run = mlflow_client.get_run(champion.run_id)
    run_keys = _keys(s3, artifacts, run.info.artifact_uri.removeprefix(f"s3://{artifacts}/"))
    assert any(k.endswith("data/snapshot.json") for k in run_keys), run_keys
    # The batch went into the data store on S3 under its content hash.
    assert [
        k for k in _keys(s3, stack.settings.data_bucket, f"store/{PIPELINE}/accepted/") if k.endswith(".csv")
    ]

    # The model server follows the champion alias: it serves v1 without a restart.
    from mlops.serving.client import wait_until_ready

    server = f"http://127.0.0.1:{stack.settings.model_port}"
    assert wait_until_ready(server, timeout=120), httpx.get(f"{server}/ready").text
    # Admin wants the stack's token, POSTs are JSON only, and only the stack's Host names are answered.
    assert httpx.post(f"{server}/admin/reload", timeout=30).status_code == 401
    admin = {"Authorization": f"Bearer {stack.settings.serving_admin_token}"}
    assert httpx.post(f"{server}/admin/reload", headers=admin, timeout=30).status_code == 204
    form = {**admin, "Content-Type": "application/x-www-form-urlencoded"}
    assert httpx.post(f"{server}/admin/reload", content=b"a=1", headers=form, timeout=30).status_code == 415
    assert httpx.get(f"{server}/health", headers={"Host": "evil.example"}, timeout=30).status_code == 400


def test_a_corrupted_batch_fails_at_validation_and_the_alert_arrives_by_email(
    stack: NativeStack, airflow_api: Any, mlflow_client: Any, s3: Any, landing: dict[str, str]
) -> None:
    run_id = _trigger(airflow_api, {"data_uri": landing["corrupt"]})

    assert _wait_run(airflow_api, run_id) == "failed"
    states = _states(airflow_api, run_id)
    assert states["ingest"] == "success" and states["validate"] == "failed", states
    assert states["train"] == "upstream_failed", states
    assert mlflow_client.get_model_version_by_alias(PIPELINE, "champion").version == "1"
    assert _keys(s3, stack.settings.data_bucket, f"store/{PIPELINE}/quarantine/")

    def alerts() -> list[Any]:
        box = mailbox.Maildir(stack.home / "mail", factory=None, create=False)
        messages = [
            email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()
        ]
        return [m for m in messages if run_id in m.get_body(("plain", "html")).get_content()]

    deadline = time.monotonic() + 60
    while not alerts() and time.monotonic() < deadline:
        time.sleep(1)
    mails = alerts()
    assert mails, f"no alert for {run_id} in {stack.home / 'mail'}"
    assert mails[0]["To"] == "ml-oncology@example.com"
    assert "validate" in mails[0].get_body(("plain", "html")).get_content()


def test_a_worker_killed_mid_training_the_task_retries_on_another_worker(
    stack: NativeStack, airflow_api: Any, mlflow_client: Any, s3: Any, landing: dict[str, str]
) -> None:
    stack.start_worker(2)
    second = stack.log_dir / "airflow-worker-2.log"
    deadline = time.monotonic() + 90
    while "ready." not in (second.read_text() if second.exists() else "") and time.monotonic() < deadline:
        time.sleep(1)
    workers = {name: stack.pid(name) for name in ("airflow-worker", "airflow-worker-2")}
    assert all(workers.values()), workers
    slow = {"estimator": "mlops_datagen.faulty.SlowFitClassifier", "params": {"fit_seconds": 20, "C": 0.1}}

    run_id = _trigger(airflow_api, {"data_uri": landing["second"], "model": slow, "reason": "kill a worker"})

    # Wait for the first try of `train` to run, find its worker from the task's pid, and kill that worker.
    deadline = time.monotonic() + 180
    while True:
        train = _task_instances(airflow_api, run_id).get("train")
        if train is not None and train.state is not None and train.state.value == "running" and train.pid:
            break
        assert time.monotonic() < deadline, _states(airflow_api, run_id)
        time.sleep(0.5)
    time.sleep(3)  # well inside the 20 s fit
    killed = _worker_of(train.pid, workers)
    assert killed in workers, f"train's pid {train.pid} is under neither worker {workers}"
    survivor = next(name for name in workers if name != killed)
    # The worker dies as with its machine: its process group and every process under it (Airflow runs the
    # task itself in a process group of its own).
    doomed = {os.getpgid(pid) for pid in [workers[killed], *_descendants(workers[killed])]}
    for group in doomed:
        os.killpg(group, signal.SIGKILL)

    retried_on: set[str] = set()

    def note_retry() -> None:
        ti = _task_instances(airflow_api, run_id).get("train")
        if ti and ti.try_number >= 2 and ti.state and ti.state.value == "running" and ti.pid:
            retried_on.add(_worker_of(ti.pid, workers))

    assert _wait_run(airflow_api, run_id, on_poll=note_retry) == "success", _states(airflow_api, run_id)

    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    tries = TaskInstanceApi(airflow_api).get_task_instance_tries(DAG_ID, run_id, "train").task_instances
    by_try = {t.try_number: t for t in tries}
    assert by_try[1].state.value == "failed", tries
    assert max(by_try) == 2 and by_try[2].state.value == "success", tries
    assert retried_on == {survivor}, (retried_on, killed)
    assert stack.pid(killed) is None

    # No duplicate versions: this run registered exactly one, and the versions are 1..n without gaps.
    versions = _versions(mlflow_client)
    assert [int(v.version) for v in versions] == list(range(1, len(versions) + 1))
    mine = [v for v in versions if v.tags.get("airflow.run_id") == run_id]
    assert len(mine) == 1, [(v.version, v.tags.get("airflow.run_id")) for v in versions]
    trained = mlflow_client.get_run(mine[0].run_id)
    assert trained.data.tags.get("airflow.try_number") == "2", trained.data.tags
    # No lost data: both good batches are accepted, and the new version trained on both.
    accepted = [
        k for k in _keys(s3, stack.settings.data_bucket, f"store/{PIPELINE}/accepted/") if k.endswith(".csv")
    ]
    assert len(accepted) == 2, accepted
    artifacts = stack.settings.artifact_bucket
    key = f"{trained.info.artifact_uri.removeprefix(f's3://{artifacts}/')}/data/snapshot.json"
    snapshot = json.loads(s3.get_object(Bucket=artifacts, Key=key)["Body"].read())
    assert len(snapshot["batches"]) == 2, snapshot


def test_down_after_the_documented_eval_stops_everything_and_up_again_serves_the_same_champion(
    stack: NativeStack, mlflow_client: Any, s3: Any, landing: dict[str, str]
) -> None:
    """`eval "$(mlops stack env)"` then `mlops stack down` (no --home) stops every process of the stack; `up`
    again finds the registry's artifacts in S3 (kept in <home>/s3) and the model server serves the champion."""
    import shlex
    import subprocess
    import sys

    from mlops.tooling.stack_native import _group_alive, _tcp

    champion = mlflow_client.get_model_version_by_alias(PIPELINE, "champion")
    running = {name: pid for name in stack.started() if (pid := stack.pid(name))}
    # (One of the two workers was killed by the test before.)
    assert {"s3", "smtp", "mlflow", "airflow-apiserver", "airflow-scheduler", "model-server"} <= set(running)
    assert [name for name in running if name.startswith("airflow-worker")], running
    mlops = str(Path(sys.executable).parent / "mlops")
    shell = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AWS_", "MLFLOW_", "AIRFLOW"))
    }
    exported = subprocess.run(
        [mlops, "stack", "env", "--home", str(stack.home)],
        env=shell,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in exported.splitlines():  # what `eval` does with it
        key, _, value = line.removeprefix("export ").partition("=")
        shell[key] = shlex.split(value)[0] if value else ""
    assert shell["MLOPS_HOME"] == str(stack.home)

    down = subprocess.run([mlops, "stack", "down"], env=shell, capture_output=True, text=True, timeout=300)

    assert down.returncode == 0, down.stdout + down.stderr
    for name, pid in running.items():
        assert f"stopped {name} (pid {pid})" in down.stdout, down.stdout
    assert not [name for name, pid in running.items() if _group_alive(pid)]
    s = stack.settings
    assert not [port for port in (s.s3_port, s.mlflow_port, s.airflow_port, s.model_port) if _tcp(port)]

    stack.up(workers=1)

    # The objects are back: the batch in the landing area and the champion's model, which the server loads.
    bucket, _, key = landing["first"].removeprefix("s3://").partition("/")
    assert s3.get_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    from mlops.serving.client import wait_until_ready

    server = f"http://127.0.0.1:{s.model_port}"
    assert wait_until_ready(server, timeout=180), httpx.get(f"{server}/model", timeout=30).text
    served = httpx.get(f"{server}/model", timeout=30).json()
    assert str(served["version"]) == champion.version, served
    assert served["last_load_error"] is None, served


def test_up_refuses_a_registry_whose_artifacts_are_gone(
    stack: NativeStack, mlflow_client: Any, s3: Any
) -> None:
    """Objects lost (a stack from before they were kept, a deleted <home>/s3): `up` stops and says why."""
    from mlops.errors import StackError

    champion = mlflow_client.get_model_version_by_alias(PIPELINE, "champion")
    model = mlflow_client.get_logged_model(champion.source.removeprefix("models:/"))
    bucket, _, prefix = model.artifact_location.removeprefix("s3://").partition("/")
    s3.delete_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/MLmodel")
    stack.down()

    with pytest.raises(StackError, match=rf"'{PIPELINE}' v{champion.version} \(alias champion\): no s3://"):
        stack.up(workers=1)
    assert stack.pid("mlflow") is None and stack.pid("model-server") is None  # it stopped before MLflow
