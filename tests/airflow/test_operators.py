"""Operator tests: each operator of the real DAGs, its inputs given as Airflow would render them, ``execute()``
called directly with a minimal context, no scheduler, against real backends (a local MLflow store, real
files, a real HTTP server on 127.0.0.1 for the canary trigger)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from receivers import free_port
from task_runtime import TaskInstance, context

from mlops.config import PipelineConfig, load_config

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PIPELINE = "breast_cancer"


def given(task: Any, **inputs: Any) -> dict[str, Any]:
    """Give a task its inputs as Airflow renders them (XComArgs resolved); returns a context to run it with."""
    for name, value in inputs.items():
        setattr(task, name, value)
    return context(task)


def run(task: Any, **inputs: Any) -> tuple[Any, TaskInstance]:
    """Execute a task on its inputs; returns its result and its task instance."""
    ctx = given(task, **inputs)
    return task.execute(ctx), ctx["ti"]


# Real backends ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(module_home: Path) -> Iterator[Path]:
    """A fresh MLOPS_HOME (data store) and MLflow store for this module, no admin token for the server."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLOPS_SERVING_ADMIN_TOKEN", raising=False)
        yield module_home


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from mlops_datagen import corrupt_batch, generate_batches

    landing = tmp_path_factory.mktemp("landing")
    first, second = generate_batches(PIPELINE, landing, batches=2, rows=200, seed=3)
    return {
        "first": first,
        "second": second,
        "bad": corrupt_batch(second, landing / "corrupt-missing_column.csv", "missing_column"),
    }


def pipeline(**deploy: Any) -> PipelineConfig:
    """breast_cancer with alerts to the task log, no smoke test (not what these tests are about)."""
    data = load_config(REPO / "include" / "pipelines" / f"{PIPELINE}.yaml").model_dump(mode="json")
    data["alerts"] = []
    data["deploy"]["smoke_test"]["enabled"] = False
    data["deploy"].update(deploy)
    return PipelineConfig.model_validate(data)


def train_and_gate(config: PipelineConfig, data_uri: Path) -> dict[str, Any]:
    """ingest -> validate -> train -> register -> gate, each task of the real training DAG on its own."""
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    from mlops.airflow.dag_factory import build_training_dag

    dag = build_training_dag(config)
    seen: dict[str, Any] = {"dag": dag}
    seen["ingest"], _ = run(dag.get_task("ingest"), data_uri=str(data_uri))
    seen["validate"], _ = run(dag.get_task("validate"), batch=seen["ingest"])
    seen["train"], seen["train_ti"] = run(dag.get_task("train"), batch=seen["validate"]["batch"])
    seen["register"], _ = run(dag.get_task("register"), trained=seen["train"])
    # A branch skips the branch not taken by raising; its verdict is in XCom key "verdict".
    gate = dag.get_task("gate")
    ctx = given(gate, registered=seen["register"])
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        gate.execute(ctx)
    seen["skipped"] = skipped.value.tasks
    seen["verdict"] = ctx["ti"].xcom["verdict"]
    return seen


@pytest.fixture(scope="module")
def first_model(home: Path, batches: dict[str, Path]) -> dict[str, Any]:
    """The first run of the training DAG's tasks, deployed (direct strategy)."""
    config = pipeline()
    seen = train_and_gate(config, batches["first"])
    seen["deploy"], seen["deploy_ti"] = run(seen["dag"].get_task("deploy"), verdict=seen["verdict"])
    return seen


def test_ingest_validate_train_register_gate_and_deploy(first_model: dict[str, Any], home: Path) -> None:
    from mlops import registry

    batch = first_model["ingest"]
    assert batch["pipeline"] == PIPELINE and len(batch["content_hash"]) == 64
    assert "/incoming/" in batch["uri"]
    validated = first_model["validate"]
    assert Path(validated["batch"]["uri"].removeprefix("file://")).exists()  # moved to the accepted set
    assert (
        validated["success"]
        and "/accepted/" in validated["batch"]["uri"]
        and validated["batch"]["rows"] == 200
    )
    trained = first_model["train"]
    assert trained["model_uri"] and trained["metrics"]
    assert first_model["train_ti"].xcom["mlflow_run_id"] == trained["run_id"]  # the failure alerts' link
    assert first_model["register"] == {"version": 1, "run_id": trained["run_id"]}
    assert registry.alias_version(PIPELINE, registry.CHALLENGER) == 1

    verdict = first_model["verdict"]
    assert verdict["status"] == "passed" and verdict["challenger_version"] == 1
    assert verdict["champion_version"] is None
    assert first_model["skipped"] == [("gate_rejected", -1)]  # the gate took the deploy branch
    tags = registry.get_version(PIPELINE, 1).tags
    assert tags["gate.verdict"] == "passed" and tags["mlops.card"].endswith("card/model_card.html")

    entry = first_model["deploy"]
    assert (entry["event"], entry["from_version"], entry["to_version"]) == ("promoted", None, 1)
    assert entry["evidence"]["gate"] == verdict["reasons"]
    assert "canary" not in entry["evidence"]  # strategy direct: promoted at once, no phase to wait for
    assert registry.alias_version(PIPELINE, registry.CHAMPION) == 1


def test_validate_fails_a_bad_batch_without_retries_and_quarantines_it(
    first_model: dict[str, Any], batches: dict[str, Path], home: Path
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    dag = first_model["dag"]
    batch, _ = run(dag.get_task("ingest"), data_uri=str(batches["bad"]))
    with pytest.raises(AirflowFailException, match="Validation failed") as failed:
        run(dag.get_task("validate"), batch=batch)
    assert "quarantined" in str(failed.value)
    quarantine = home / "store" / PIPELINE / "quarantine" / batch["content_hash"]
    assert json.loads((quarantine / "batch.json").read_text())["source"].endswith(
        "corrupt-missing_column.csv"
    )
    assert (quarantine / "result.json").exists() and (quarantine / "report.html").exists()
    assert not Path(batch["uri"].removeprefix("file://")).exists()  # moved out of incoming


def test_monitor_on_an_empty_window_and_on_a_window_that_ends_before_it_starts(
    first_model: dict[str, Any], home: Path
) -> None:
    from airflow.sdk.exceptions import AirflowFailException, DownstreamTasksSkipped

    from mlops.airflow.dag_factory import build_monitoring_dag

    dag = build_monitoring_dag(pipeline())
    analyze = dag.get_task("analyze")
    ctx = context(analyze, start="2026-11-20T00:00", end="2026-11-21T00:00")
    outcome = analyze.execute(ctx)
    assert outcome["status"] == "no_data" and outcome["model_version"] == 1
    assert (outcome["window_start"], outcome["window_end"]) == (
        "2026-11-20T00:00:00+00:00",
        "2026-11-21T00:00:00+00:00",
    )
    assert ctx["ti"].xcom["mlflow_run_id"] == outcome["mlflow_run_id"]

    act = dag.get_task("act")  # nothing to alert on: branch to done, skip the retraining request
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        run(act, outcome=outcome)
    assert skipped.value.tasks == [("request_retraining", -1)]

    with pytest.raises(AirflowFailException, match="before it starts"):
        analyze.execute(context(analyze, start="2026-11-21T00:00", end="2026-11-20T00:00"))


# The canary trigger against a real HTTP server ----------------------------------------------------------------
class CannedServer:
    """A model server stand-in on 127.0.0.1: ``GET /canary`` answers ``stats`` (or 404 when None),
    ``POST /admin/reload`` answers 204. Records the requests."""

    def __init__(self) -> None:
        self.stats: dict[str, Any] | None = None
        self.requests: list[str] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                canned.requests.append(f"GET {self.path}")
                body = json.dumps(canned.stats or {"detail": "no canary phase"}).encode()
                self.send_response(200 if canned.stats is not None and self.path == "/canary" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                canned.requests.append(f"POST {self.path}")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server = CannedServer()
    yield server
    server.close()


def route(requests: int, p99_ms: float, benign: int) -> dict[str, Any]:
    return {
        "requests": requests,
        "errors": 0,
        "error_rate": 0.0,
        "rows": requests,
        "p50_ms": p99_ms / 2,
        "p99_ms": p99_ms,
        "class_counts": {"benign": benign, "malignant": requests - benign},
        "mean": None,
        "std": None,
    }


def guard_stats(version: int, requests: int, p99_ms: float) -> dict[str, Any]:
    return {
        "canary_version": version,
        "champion_version": version - 1,
        "strategy": "canary",
        "traffic_share": 0.5,
        "since": "2026-11-26T00:00:00.000+00:00",
        "champion": route(requests, 12.0, requests * 6 // 10),
        "canary": route(requests, p99_ms, requests * 6 // 10),
    }


def phase(url: str, version: int = 2, max_duration: float = 30.0) -> dict[str, Any]:
    from mlops.services.deploy import CanaryPhase

    rules = {
        "traffic_share": 0.5,
        "min_requests": 20,
        "max_duration_seconds": max_duration,
        "max_p99_latency_ms": 300,
    }
    return CanaryPhase(
        pipeline=PIPELINE,
        version=version,
        expected_champion=version - 1,
        server_url=url,
        started_at=datetime.now(UTC).timestamp(),
        rules=pipeline().deploy.canary.model_copy(update=rules).model_dump(mode="json"),
        actor="test",
        reason="test",
        evidence={},
    ).to_dict()


def fire(trigger: Any) -> dict[str, Any]:
    """Run a trigger as the triggerer does (rebuilt from its serialized form) until its first event."""
    from airflow.sdk.module_loading import import_string

    classpath, kwargs = trigger.serialize()
    rebuilt = import_string(classpath)(**json.loads(json.dumps(kwargs)))

    async def first_event() -> Any:
        return await asyncio.wait_for(anext(rebuilt.run()), timeout=60)

    return asyncio.run(first_event()).payload


def test_the_canary_trigger_ends_when_the_guard_can_judge(canned: CannedServer) -> None:
    from mlops.airflow.triggers import CanaryTrigger

    canned.stats = guard_stats(2, requests=5, p99_ms=20.0)  # too few requests yet: keeps watching
    trigger = CanaryTrigger(phase(canned.url), poll_seconds=0.05)
    threading.Timer(0.5, lambda: setattr(canned, "stats", guard_stats(2, requests=40, p99_ms=20.0))).start()
    event = fire(trigger)
    assert event["stats"]["canary"]["requests"] == 40 and event.get("error") is None
    assert event["phase"] == trigger.phase and "40 requests" in event["reasons"][0]
    assert canned.requests.count("GET /canary") >= 2


def test_the_canary_trigger_ends_when_a_guard_rail_trips(canned: CannedServer) -> None:
    from mlops.airflow.triggers import CanaryTrigger

    canned.stats = guard_stats(2, requests=25, p99_ms=900.0)
    event = fire(CanaryTrigger(phase(canned.url), poll_seconds=0.05))
    assert event["stats"]["canary"]["p99_ms"] == 900.0
    assert "p99 latency 900 ms above 300 ms" in event["reasons"][0]


def test_the_canary_trigger_gives_up_on_a_server_that_never_serves_the_canary(canned: CannedServer) -> None:
    from mlops.airflow.triggers import CanaryTrigger

    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    event = fire(CanaryTrigger(phase(unreachable, max_duration=0.4), poll_seconds=0.05))
    assert event["stats"] is None and "ConnectError" in event["problem"]
    assert event["elapsed_seconds"] >= 0.4 and "never served v2 as canary" in event["reasons"][0]

    event = fire(CanaryTrigger(phase(canned.url, max_duration=0.3), poll_seconds=0.05))  # 404: no phase
    assert event["stats"] is None and event["problem"] == "GET /canary answered 404"


def test_deploy_defers_to_the_canary_trigger_and_resumes_to_promote(
    first_model: dict[str, Any], batches: dict[str, Path], canned: CannedServer
) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from mlops import registry
    from mlops.airflow.triggers import CanaryTrigger

    config = pipeline(strategy="canary", canary={"min_requests": 20, "max_duration_seconds": 30})
    config = config.model_copy(update={"serving": config.serving.model_copy(update={"port": canned.port})})
    seen = train_and_gate(config, batches["second"])
    verdict = seen["verdict"]
    assert verdict["status"] == "passed" and (verdict["challenger_version"], verdict["champion_version"]) == (
        2,
        1,
    )

    deploy = seen["dag"].get_task("deploy")
    with pytest.raises(TaskDeferred) as deferred:
        run(deploy, verdict=verdict)
    trigger = deferred.value.trigger
    assert isinstance(trigger, CanaryTrigger) and deferred.value.method_name == "execute_complete"
    assert registry.alias_version(PIPELINE, "canary") == 2 and "POST /admin/reload" in canned.requests
    assert registry.alias_version(PIPELINE, registry.CHAMPION) == 1  # nothing promoted while it waits

    canned.stats = guard_stats(2, requests=30, p99_ms=15.0)
    event = fire(trigger)
    entry = deploy.execute_complete(context(deploy), event)

    assert (entry["event"], entry["from_version"], entry["to_version"]) == ("promoted", 1, 2)
    assert entry["evidence"]["canary"]["decision"] == "promote"
    assert registry.alias_version(PIPELINE, registry.CHAMPION) == 2
    assert registry.alias_version(PIPELINE, "canary") is None
    events = [e["event"] for e in registry.audit_trail(PIPELINE, 2)]
    assert events.index("canary_started") < events.index("canary_promote") < events.index("promoted")
    assert registry.get_version(PIPELINE, 1).tags["deploy.status"] == "retired"
