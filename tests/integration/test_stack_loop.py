"""The closed loop, unattended, on the production stack (``mlops stack up`` in a temporary home).

Nothing here runs a DAG by hand. The test only does what the world around the pipeline does: it unpauses the
DAGs once (as an operator would after deploying them), delivers a dated batch to the S3 landing prefix, sends
labelled traffic to the model server, and watches. Airflow's scheduler, triggerer and Celery workers do the
rest:

1. ``breast_cancer_training`` runs on its cron schedule; its first task, ``wait_for_batch``, waits deferred
   in the triggerer until the day's batch lands in S3, then the run trains and promotes a champion;
2. the model server follows the ``champion`` alias;
3. labelled traffic with drift (the cells "measure larger", as after a device recalibration) reaches it;
4. ``breast_cancer_monitoring`` runs on its two-minute cron, looks at the window of its data interval and
   decides ``retrain`` (the test's policy lets one drifted window retrain);
5. the scheduler starts ``breast_cancer_training`` from the Asset event ``breast_cancer_retrain``;
6. the gate passes the retrained model, deploy promotes it, the model server serves it;
7. the mailbox holds the drift alert and no failure alert.

It goes only through the stack's public surfaces: Airflow's REST API with the official client, MlflowClient
against the tracking server, boto3 against the S3 API, httpx to the model server, the SMTP server's mailbox.
The stack is its own (tests/integration/conftest.py starts one per module): tests/integration/test_stack.py
kills a worker on its stack, and its DAGs run by hand only.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from stack_helpers import eventually

from mlops.tooling.stack_native import NativeStack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"
TRAINING = f"{PIPELINE}_training"
MONITORING = f"{PIPELINE}_monitoring"
#: The monitoring DAG's cron in this test: each run's window is the two minutes before it.
WINDOW = timedelta(minutes=2)
#: Rows of the first batch and of the drifted traffic (the demo's monitoring story uses the same frames).
ROWS = 400


# The stack (tests/integration/conftest.py starts it with these settings) ----------------------------------------
def stack_env(home: Path, settings: dict[str, str]) -> dict[str, str]:
    """breast_cancer as shipped (a daily cron), but its batch lands in the stack's S3 and the run waits for it,
    monitoring every two minutes, a policy that retrains on one drifted window, the deploy step telling the
    stack's model server at once, quick retries, alerts by e-mail only; two tasks at a time on the worker."""
    config = yaml.safe_load((REPO / "include" / "pipelines" / f"{PIPELINE}.yaml").read_text())
    config["data"] = {
        "source": f"s3://{settings['MLOPS_STACK_DATA_BUCKET']}/landing/{PIPELINE}/{{ds}}.csv",
        "format": "csv",
        "wait": {"timeout_hours": 1, "poke_seconds": 2},
    }
    config["schedule"] = "@daily"
    config["monitoring"] = {
        "schedule": "*/2 * * * *",
        "min_rows": 50,
        "retrain": {
            "consecutive_windows": 1,
            # One retraining for this test: a window that straddles the traffic cannot start a second one.
            "cooldown_hours": 1,
            "min_new_labels": 100,
            "data": "all",
        },
    }
    config["deploy"] = {"server_url": f"http://127.0.0.1:{settings['MLOPS_STACK_MODEL_PORT']}"}
    # Two runs at a time: should the test cross 00:00 UTC, the cron's run for the new day (waiting for its batch)
    # must not hold up the retraining run.
    config["airflow"].update(retries=2, retry_delay_seconds=2, max_active_runs=2)
    config["alerts"] = [route for route in config["alerts"] if route["channel"] == "email"]
    folder = home / "pipelines"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return {"MLOPS_STACK_WORKER_CONCURRENCY": "2", "MLOPS_PIPELINES_DIR": str(folder)}


@pytest.fixture(scope="module")
def server(stack: NativeStack) -> str:
    return f"http://127.0.0.1:{stack.settings.model_port}"


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    """The first batch (frame 0) and the drifted live traffic (frame 1), with their true labels."""
    from mlops_datagen import generate_frames

    made = generate_frames(PIPELINE, batches=2, rows=ROWS, seed=21, feature_drift=2.0, drift_from=1)
    return [frame for _, frame in made]


@pytest.fixture(scope="module")
def loop() -> dict[str, Any]:
    """What one step leaves for the next (the tests run in order, as the loop does)."""
    return {}


# Helpers -------------------------------------------------------------------------------------------------------
def _unpause(api: Any, dag_id: str) -> None:
    from airflow_client.client.api.dag_api import DAGApi
    from airflow_client.client.models import DAGPatchBody

    def unpaused() -> bool:
        try:  # the DAG processor may not have parsed the file yet
            return DAGApi(api).patch_dag(dag_id, DAGPatchBody(is_paused=False)).is_paused is False
        except Exception:
            return False

    eventually(f"{dag_id} unpaused", unpaused, timeout=120)


def _runs(api: Any, dag_id: str) -> list[Any]:
    from airflow_client.client.api.dag_run_api import DagRunApi

    return sorted(DagRunApi(api).get_dag_runs(dag_id, limit=100).dag_runs, key=lambda r: r.run_after)


def _states(api: Any, dag_id: str, run_id: str) -> dict[str, str | None]:
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    found = TaskInstanceApi(api).get_task_instances(dag_id, run_id).task_instances
    return {ti.task_id: (ti.state.value if ti.state else None) for ti in found}


def _finished(api: Any, dag_id: str, run_id: str, timeout: float) -> str:
    from airflow_client.client.api.dag_run_api import DagRunApi

    def done() -> str | None:
        state = str(DagRunApi(api).get_dag_run(dag_id, run_id).state.value)
        return state if state in ("success", "failed") else None

    try:
        return str(eventually(f"{dag_id} run {run_id} finished", done, timeout))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; tasks: {_states(api, dag_id, run_id)}") from None


def _model_version(server: str) -> int | None:
    try:
        return httpx.get(f"{server}/model", timeout=5).json().get("version")
    except (httpx.HTTPError, ValueError):
        return None


def _mails(stack: NativeStack) -> list[Any]:
    box = mailbox.Maildir(stack.home / "mail", factory=None, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]


# The loop ------------------------------------------------------------------------------------------------------
def test_1_a_dated_batch_landing_in_s3_starts_training_and_promotes_a_champion(
    stack: NativeStack, airflow_api: Any, mlflow_client: Any, s3: Any, frames: list[Any], loop: dict[str, Any]
) -> None:
    started = time.monotonic()
    _unpause(airflow_api, TRAINING)
    # The scheduler creates today's run of the daily cron at once (catchup off: the latest tick only).
    run = eventually("the scheduler's run of the training DAG", lambda: _runs(airflow_api, TRAINING), 120)[0]
    assert run.run_type.value == "scheduled", run
    # No batch yet: the run waits for it in the triggerer, holding no worker slot; nothing downstream starts.
    eventually(
        "wait_for_batch deferred",
        lambda: _states(airflow_api, TRAINING, run.dag_run_id).get("wait_for_batch") == "deferred",
        120,
    )
    time.sleep(5)  # a few pokes of the trigger find nothing
    states = _states(airflow_api, TRAINING, run.dag_run_id)
    assert states["wait_for_batch"] == "deferred" and states["ingest"] in (None, "none"), states

    # The day's batch lands, named by the run's date (read from the run: the test is not tied to the clock).
    day = run.logical_date.astimezone(UTC).date().isoformat()
    key = f"landing/{PIPELINE}/{day}.csv"
    batch = stack.home / f"{day}.csv"
    frames[0].to_csv(batch, index=False)
    s3.upload_file(str(batch), stack.settings.data_bucket, key)

    assert _finished(airflow_api, TRAINING, run.dag_run_id, 420) == "success", _states(
        airflow_api, TRAINING, run.dag_run_id
    )
    states = _states(airflow_api, TRAINING, run.dag_run_id)
    assert states["deploy"] == "success" and states["gate_rejected"] == "skipped", states
    champion = mlflow_client.get_model_version_by_alias(PIPELINE, "champion")
    assert champion.version == "1"
    assert champion.tags["airflow.run_id"] == run.dag_run_id
    accepted = s3.list_objects_v2(Bucket=stack.settings.data_bucket, Prefix=f"store/{PIPELINE}/accepted/")
    assert [o["Key"] for o in accepted.get("Contents", []) if o["Key"].endswith(".csv")], accepted
    loop["first_run"] = run.dag_run_id
    print(f"step 1: {time.monotonic() - started:.0f} s from unpausing to champion v1")


def test_2_the_model_server_follows_the_champion(server: str) -> None:
    eventually("the model server serving v1", lambda: _model_version(server) == 1, 120, interval=1)
    assert httpx.get(f"{server}/ready", timeout=5).json()["model_version"] == 1


def test_3_labelled_traffic_with_drift_reaches_the_server(
    stack: NativeStack, server: str, frames: list[Any], loop: dict[str, Any]
) -> None:
    # Send it early in a monitoring window, so that one window holds all of it.
    now = datetime.now(UTC)
    window_start = now.replace(minute=now.minute - now.minute % 2, second=0, microsecond=0)
    if now - window_start > timedelta(seconds=50):
        window_start += WINDOW
        time.sleep((window_start - now).total_seconds() + 1)
    drifted = frames[1]
    features = [c for c in drifted.columns if c != "diagnosis"]
    answered: dict[int, int] = {}
    # Feedback needs the stack's feedback token and joins on the server's request id (ours is a correlation id).
    labeller = {"Authorization": f"Bearer {stack.settings.serving_feedback_token}"}
    with httpx.Client(base_url=server, timeout=10) as client:
        for i, record in enumerate(drifted[features].to_dict("records")):
            answer = client.post("/predict", json={"record": record}, headers={"X-Request-ID": f"loop-{i}"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["correlation_id"] == f"loop-{i}"
            version = answer.json()["model_version"]
            answered[version] = answered.get(version, 0) + 1
            label = int(drifted["diagnosis"].iat[i])
            request_id = answer.json()["request_id"]
            feedback = client.post(
                "/feedback", json={"request_id": request_id, "label": label}, headers=labeller
            )
            assert feedback.status_code == 202, feedback.text
        refused = client.post("/feedback", json={"request_id": request_id, "label": 0})
        assert refused.status_code == 401, refused.text
    sent_by = datetime.now(UTC)
    assert answered == {1: ROWS}, answered
    assert sent_by < window_start + WINDOW, f"the traffic spilled over its window ({window_start}..{sent_by})"
    loop["window_start"] = window_start


def test_4_monitoring_on_its_schedule_decides_to_retrain(
    airflow_api: Any, mlflow_client: Any, loop: dict[str, Any]
) -> None:
    window_start = loop["window_start"]
    _unpause(airflow_api, MONITORING)

    def run_of_the_window() -> Any:
        return next(
            (r for r in _runs(airflow_api, MONITORING) if r.data_interval_start == window_start),
            None,
        )

    # The run of the traffic's window starts when that window ends (at most two minutes from now).
    run = eventually(f"the monitoring run of the window from {window_start}", run_of_the_window, 240)
    assert run.run_type.value == "scheduled", run
    assert run.data_interval_end - run.data_interval_start == WINDOW, run
    assert _finished(airflow_api, MONITORING, run.dag_run_id, 240) == "success", _states(
        airflow_api, MONITORING, run.dag_run_id
    )
    states = _states(airflow_api, MONITORING, run.dag_run_id)
    assert states["request_retraining"] == "success" and states["done"] == "skipped", states

    # The decision, as the policy's memory (the MLflow experiment <name>-monitoring) keeps it.
    experiment = mlflow_client.get_experiment_by_name(f"{PIPELINE}-monitoring")
    decided = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string="tags.`mlops.monitoring.decision` = 'retrain'"
    )
    assert len(decided) == 1, [r.data.tags.get("mlops.monitoring.decision") for r in decided]
    tags = decided[0].data.tags
    assert datetime.fromisoformat(tags["mlops.monitoring.window_start"]) == window_start, tags
    assert tags["mlops.monitoring.drifted"] == "true", tags
    loop["monitoring_run"] = run.dag_run_id
    loop["retrain_data_uri"] = tags["mlops.monitoring.retrain_data_uri"]


def test_5_the_scheduler_starts_training_from_the_asset_event(airflow_api: Any, loop: dict[str, Any]) -> None:
    from airflow_client.client.api.asset_api import AssetApi

    def retraining() -> Any:
        return next((r for r in _runs(airflow_api, TRAINING) if r.run_type.value == "asset_triggered"), None)

    run = eventually("a training run triggered by the Asset event", retraining, 120)
    events = AssetApi(airflow_api).get_asset_events(source_dag_id=MONITORING).asset_events
    assert [e.source_run_id for e in events] == [loop["monitoring_run"]], events
    assert events[0].extra["data_uri"] == loop["retrain_data_uri"], events[0].extra
    loop["retraining_run"] = run.dag_run_id


def test_6_the_gate_passes_the_retrained_model_deploy_promotes_it_and_the_server_serves_it(
    airflow_api: Any, mlflow_client: Any, server: str, frames: list[Any], loop: dict[str, Any]
) -> None:
    run_id = loop["retraining_run"]
    assert _finished(airflow_api, TRAINING, run_id, 420) == "success", _states(airflow_api, TRAINING, run_id)
    states = _states(airflow_api, TRAINING, run_id)
    assert states["wait_for_batch"] == "success", states  # the retraining batch was there already
    assert states["gate"] == "success" and states["deploy"] == "success", states
    assert states["gate_rejected"] == "skipped", states

    champion = mlflow_client.get_model_version_by_alias(PIPELINE, "champion")
    assert champion.version == "2"
    assert champion.tags["airflow.run_id"] == run_id
    assert champion.tags["mlops.trigger"] == "drift", champion.tags
    assert champion.tags["gate.verdict"] == "passed", champion.tags
    eventually("the model server serving v2", lambda: _model_version(server) == 2, 120, interval=1)
    record = frames[1].drop(columns=["diagnosis"]).iloc[0].to_dict()
    answer = httpx.post(f"{server}/predict", json={"record": record}, timeout=10)
    assert answer.status_code == 200 and answer.json()["model_version"] == 2, answer.text


def test_7_the_mailbox_holds_the_drift_alert_and_no_failure_alert(stack: NativeStack) -> None:
    def drift_alerts() -> list[Any]:
        return [m for m in _mails(stack) if "drift detected: retraining requested" in str(m["Subject"])]

    mails = eventually("the drift alert in the mailbox", drift_alerts, 60)
    assert mails[0]["To"] == "ml-oncology@example.com"
    subjects = [str(m["Subject"]) for m in _mails(stack)]
    assert not [s for s in subjects if "[FAILURE]" in s], subjects
