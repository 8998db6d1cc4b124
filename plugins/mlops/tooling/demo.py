"""The demo story, run through Airflow (``dag.test``) on the embedded default.

For every example pipeline: a first batch becomes champion v1; a corrupted batch is rejected at validation and
quarantined (alert logged, champion unchanged); a new batch trains a challenger that passes the gate and becomes
champion v2; a deliberately worse model is rejected by the gate. Then, for breast_cancer, the model server story
(hot swap, a broken challenger caught, rollback) and the monitoring story (drift injected into live traffic,
detected and explained, retraining requested by an Asset event, the retrained model promoted and served).
Airflow's own output goes to a log file; the screen shows the story and a summary table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mlops.config import PipelineConfig, load_all, settings
from mlops.tooling.airflow_db import ensure_airflow_db

#: Which corruption each pipeline's demo shows (all kinds are covered by the tests).
CORRUPTION = {"breast_cancer": "nulls", "fraud_detection": "out_of_range", "demand_forecast": "wrong_type"}
WORSE_MODEL = {
    "classification": {"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}},
    "regression": {"estimator": "sklearn.dummy.DummyRegressor", "params": {"strategy": "mean"}},
}
SERVED = "breast_cancer"  # the pipeline whose model server the demo starts
STATE_DIRS = ("airflow", "mlartifacts", "store", "landing", "mlflow.db", "demo.log")


@dataclass
class Step:
    title: str
    conf: dict[str, Any]
    expect: str  # "promoted" | "validation_failed" | "rejected" | "unchanged"
    outcome: str = ""
    detail: str = ""
    seconds: float = 0.0

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.expect


@dataclass
class PipelineStory:
    config: PipelineConfig
    steps: list[Step] = field(default_factory=list)


@contextlib.contextmanager
def _quiet(log_path: Path) -> Iterator[None]:
    """Send everything written to fd 1 and 2 (Airflow's task logs) to the log file for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _prepare_home(home: Path, keep: bool, say: Any) -> None:
    if not keep:
        for name in STATE_DIRS:
            target = home / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    home.mkdir(parents=True, exist_ok=True)
    say(f"State folder: {home}")
    if not ensure_airflow_db(settings.airflow_env(home), say=say):
        say("Airflow metadata database up to date")


def _write_batches(config: PipelineConfig, home: Path) -> dict[str, str]:
    from mlops_datagen import corrupt_batch, generate_batches

    landing = home / "landing" / config.name
    first, second = generate_batches(config.name, landing, batches=2, start_date="2026-01-01", seed=7)
    kind = CORRUPTION.get(config.name, "nulls")
    corrupted = corrupt_batch(second, landing / f"{second.stem}-corrupt-{kind}{second.suffix}", kind)
    return {"first": str(first), "second": str(second), "corrupted": str(corrupted), "kind": kind}


def _story(config: PipelineConfig, batches: dict[str, str]) -> PipelineStory:
    return PipelineStory(
        config,
        [
            Step("first batch", {"data_uri": batches["first"], "reason": "demo: first batch"}, "promoted"),
            Step(
                f"corrupted batch ({batches['kind']})",
                {"data_uri": batches["corrupted"], "reason": f"demo: corrupted batch ({batches['kind']})"},
                "validation_failed",
            ),
            Step("new batch", {"data_uri": batches["second"], "reason": "demo: new batch"}, "promoted"),
            Step(
                "same batch again",
                {"data_uri": batches["second"], "reason": "demo: same batch again"},
                "unchanged",
            ),
            Step(
                "deliberately worse model",
                {
                    "data_uri": batches["second"],
                    "model": WORSE_MODEL[config.task],
                    "reason": "demo: worse model",
                },
                "rejected",
            ),
        ],
    )


def _outcome(dag_run: Any) -> tuple[str, str]:
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    if states.get("validate") == "failed":
        return "validation_failed", "validation failed, batch quarantined, failure alert raised (task log)"
    if states.get("deploy") == "success":
        return "promoted", "gate passed, promoted"
    if states.get("gate_rejected") == "success":
        return "rejected", "gate rejected, champion kept"
    if states.get("train") == "skipped" and dag_run.state == "success":
        return "unchanged", "same data, config and code as an existing version: nothing trained"
    failed = [task for task, state in states.items() if state == "failed"]
    return "failed", f"run {dag_run.state}; failed tasks: {', '.join(failed) or 'none'}"


def _verdict(tags: dict[str, str]) -> str:
    """A version's fate in a word: the gate's verdict, or why a version that passed it was not deployed."""
    status = tags.get("deploy.status")
    if "deploy.promoted_at" in tags:  # it served: it may have been rolled back since
        return "rolled-back" if status == "rolled_back" else "passed"
    if tags.get("gate.verdict") == "passed" and status in ("rejected", "rolled_back"):
        return "smoke-failed" if tags.get("smoke.passed") == "false" else "canary-failed"
    return tags.get("gate.verdict", "-")


def _registry_facts(config: PipelineConfig) -> dict[str, Any]:
    from mlops import registry

    mlflow_client = registry.client()
    versions = sorted(
        mlflow_client.search_model_versions(f"name='{config.name}'"), key=lambda v: int(v.version)
    )
    champion = registry.alias_version(config.name, registry.CHAMPION)
    metric = config.gate.primary_metric
    verdicts = ", ".join(f"v{v.version} {_verdict(v.tags)}" for v in versions)
    value = next(
        (v.tags.get(f"gate.challenger.{metric}") for v in versions if int(v.version) == champion), None
    )
    return {
        "versions": len(versions),
        "champion": champion,
        "verdicts": verdicts,
        "metric": f"{metric} {value}",
    }


def run_demo(home: Path, pipelines: list[str] | None = None, keep: bool = False) -> int:
    """Run the story for every example pipeline; returns 0 when every step ended as the story says."""
    out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)

    def say(text: str = "") -> None:
        out.write(text + "\n")

    started = time.monotonic()
    say("MLOps kit demo: the training pipeline through Airflow on the embedded default")
    say("(SQLite Airflow, local MLflow store, local files; no services)")
    _prepare_home(home, keep, say)
    configs, errors = load_all(settings.pipelines_dir())
    for path, error in errors.items():
        say(f"! skipping broken config {path}: {error}")
    chosen = [configs[name] for name in (pipelines or sorted(configs))]
    log_path = home / "demo.log"

    from airflow.dag_processing.dagbag import DagBag

    with _quiet(log_path):
        bag = DagBag(dag_folder=str(settings.repo_root() / "dags"))
    stories = []
    for config in chosen:
        say(
            f"\n== {config.name} ({config.task}, {config.model.estimator}, gate on {config.gate.primary_metric})"
        )
        batches = _write_batches(config, home)
        say(f"   wrote batches to {Path(batches['first']).parent}")
        dag = bag.get_dag(config.training_dag_id)
        story = _story(config, batches)
        for number, step in enumerate(story.steps, 1):
            say(f"   {number}/{len(story.steps)} {step.title}: triggering {dag.dag_id} ...")
            began = time.monotonic()
            with _quiet(log_path):
                # dag.test() keeps a run's conf in the DAG's params: spell out every param each time.
                dag_run = dag.test(run_conf={"model": None, "reason": "", **step.conf})
            step.seconds = time.monotonic() - began
            step.outcome, step.detail = _outcome(dag_run)
            facts = _registry_facts(config)
            mark = "ok" if step.as_expected else "UNEXPECTED"
            say(
                f"       -> {step.detail}; champion v{facts['champion']} "
                f"({facts['metric']}) [{mark}, {step.seconds:.0f} s]"
            )
        stories.append(story)

    serving_ok = True
    if any(story.config.name == SERVED for story in stories):
        config = next(story.config for story in stories if story.config.name == SERVED)
        serving_ok = _serving_story(bag, config, home, log_path, say)
        serving_ok &= _monitoring_story(bag, config, log_path, say)

    say("\nSummary")
    width = max([36, *(len(_registry_facts(story.config)["verdicts"]) for story in stories)])
    header = (
        f"{'pipeline':<18} {'versions':>8} {'champion':>9}  {'verdicts':<{width}} primary metric (champion)"
    )
    say(header)
    say("-" * len(header))
    all_ok = True
    for story in stories:
        facts = _registry_facts(story.config)
        all_ok &= all(step.as_expected for step in story.steps)
        say(
            f"{story.config.name:<18} {facts['versions']:>8} {'v' + str(facts['champion']):>9}  "
            f"{facts['verdicts']:<{width}} {facts['metric']}"
        )
    if any(story.config.name == SERVED for story in stories):
        say(f"\n== {SERVED}: governance")
        with _quiet(log_path):
            lines: list[str] = []
            governance_story(SERVED, lines.append)
        for line in lines:
            say(f"   {line}")
    say(f"\nDone in {time.monotonic() - started:.0f} s. Airflow's own output: {log_path}")
    say("Quarantined batches, validation results and reports: " + str(home / "store"))
    say("See it in the UIs:  mlops ui" + (f" --home {home}" if home != settings.mlops_home() else ""))
    say("  Airflow http://127.0.0.1:8080 (user admin, password printed by the command)")
    say("  MLflow  http://127.0.0.1:5000 (models, versions with gate verdicts and audit tags)")
    if not (all_ok and serving_ok):
        say("\nSome steps did not end as the story expects: see UNEXPECTED above and the log.")
        return 1
    return 0


@contextlib.contextmanager
def _model_server(config: PipelineConfig, log_path: Path) -> Iterator[str]:
    """``mlops serve <pipeline>`` in a subprocess (its output in the log); yields its URL; SIGTERM at the end."""
    import socket

    port = config.serving.port
    with socket.socket() as probe:
        try:  # the configured port, so the deploy step's "reload now" reaches the server; else any free one
            probe.bind(("127.0.0.1", port))
        except OSError:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    from mlops.serving.client import serve_subprocess

    with serve_subprocess(config.name, port, log_path, stop_timeout=30) as url:
        yield url


def _serving_story(bag: Any, config: PipelineConfig, home: Path, log_path: Path, say: Any) -> bool:
    """Start the model server; it answers, follows a new champion without a restart, keeps serving while a
    broken challenger is caught, and follows a rollback."""
    with _model_server(config, log_path) as url:
        ok = _serve_and_swap(bag, config, home, log_path, say, url)
    from mlops.data.inference_log import inference_log_uri, read_inference_log

    logged = read_inference_log(inference_log_uri(config.name, config.serving.inference_log.uri), config.name)
    say(f"   the server stopped (SIGTERM) and its inference log holds {len(logged)} predictions")
    return ok and len(logged) > 0


def _serve_and_swap(bag: Any, config: PipelineConfig, home: Path, log_path: Path, say: Any, url: str) -> bool:
    import httpx
    import pandas as pd

    from mlops import registry
    from mlops.services.deploy import rollback
    from mlops.serving.client import LiveTraffic, wait_for_version, wait_until_ready

    say(f"\n== {config.name}: the model server")
    records = (
        pd.read_csv(home / "landing" / config.name / "2026-01-02.csv")[config.feature_names]
        .head(200)
        .to_dict("records")
    )
    ok = True
    if not wait_until_ready(url):
        say("   the server did not become ready within 90 s (see the log)")
        return False
    served = httpx.get(f"{url}/model", timeout=5).json()["version"]
    say(f"   1/4 `mlops serve {config.name}` on {url}: ready, serving v{served}")
    dag = bag.get_dag(config.training_dag_id)
    with LiveTraffic(url, records) as traffic:
        time.sleep(2)
        recipe = {"estimator": config.model.estimator, "params": {**config.model.params, "C": 1.0}}
        with _quiet(log_path):
            dag_run = dag.test(
                run_conf={
                    "data_uri": "landing/breast_cancer/2026-01-02.csv",
                    "model": recipe,
                    "reason": "demo: new recipe",
                }
            )
        new = registry.alias_version(config.name, registry.CHAMPION)
        followed = wait_for_version(url, new)
        ok &= _outcome(dag_run)[0] == "promoted" and followed
        say(
            f"   2/4 a new recipe (C=1.0) passed the gate and its smoke test: champion v{new}; the server "
            f"{'switched to it without a restart' if followed else 'did NOT follow'} [{'ok' if followed else 'UNEXPECTED'}]"
        )
        slow = {"estimator": "mlops_datagen.faulty.SlowClassifier", "params": {"delay_seconds": 1.5}}
        with _quiet(log_path):
            dag_run = dag.test(
                run_conf={
                    "data_uri": "landing/breast_cancer/2026-01-02.csv",
                    "model": slow,
                    "reason": "demo: slow model",
                }
            )
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
        caught = states.get("gate") == "success" and states.get("deploy") == "failed"
        still = registry.alias_version(config.name, registry.CHAMPION) == new
        ok &= caught and still
        version = registry.alias_version(config.name, registry.CHALLENGER)
        reasons = registry.get_version(config.name, version).tags.get("smoke.reasons", "")
        say(
            f"   3/4 a slow challenger v{version} passed the gate but failed its smoke test ({reasons}); "
            f"champion stays v{new} [{'ok' if caught and still else 'UNEXPECTED'}]"
        )
        with _quiet(log_path):
            entry = rollback(config, actor="demo", reason="demo: roll back to the previous champion")
        followed = wait_for_version(url, entry["to_version"])
        ok &= followed
        say(
            f"   4/4 `mlops rollback {config.name}`: champion v{entry['from_version']} -> v{entry['to_version']}; "
            f"the server followed [{'ok' if followed else 'UNEXPECTED'}]"
        )
        time.sleep(1)
    seen = ", ".join(f"v{v}: {n}" for v, n in sorted(traffic.versions.items()))
    p50 = sorted(traffic.latencies)[len(traffic.latencies) // 2] * 1000 if traffic.latencies else float("nan")
    ok &= not traffic.failures
    say(
        f"   live traffic during all of it: {sum(traffic.versions.values())} answers ({seen}), "
        f"{len(traffic.failures)} failed, p50 {p50:.1f} ms [{'ok' if not traffic.failures else 'UNEXPECTED'}]"
    )
    for failure in traffic.failures[:3]:
        say(f"     failed: {failure}")
    return ok


def _replay(url: str, config: PipelineConfig, frame: Any, tag: str) -> int:
    """Send each row to the server as one request, then its true label to /feedback (by the server's request id,
    with the feedback token the server generated in MLOPS_HOME or the environment's); returns failures."""
    import httpx

    from mlops.config import settings

    failures = 0
    token = settings.serving_feedback_token()
    labeller = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for i, record in enumerate(frame[config.feature_names].to_dict("records")):
            answer = client.post("/predict", json={"record": record}, headers={"X-Request-ID": f"{tag}-{i}"})
            if answer.status_code != 200:
                failures += 1
                continue
            label = {"request_id": answer.json()["request_id"], "label": int(frame[config.target].iat[i])}
            failures += client.post("/feedback", json=label, headers=labeller).status_code != 202
    return failures


def _wait_for_log(config: PipelineConfig, start: Any, end: Any, rows: int, timeout: float = 30.0) -> bool:
    """Wait until the server's inference log holds ``rows`` labelled predictions of the window."""
    from mlops.monitoring.window import LABEL, read_window
    from mlops.serving.client import wait_until

    def logged() -> bool:
        window = read_window(config, start, end)
        return len(window) >= rows and LABEL in window.columns and window[LABEL].notna().sum() >= rows

    return wait_until(logged, timeout, interval=0.5)


def _monitoring_story(bag: Any, config: PipelineConfig, log_path: Path, say: Any) -> bool:
    """Live traffic drifts; monitoring detects and explains it, requests retraining (the Asset event), the
    retrained model passes the gate, the server follows, and the next window is fine again."""
    from datetime import UTC, datetime

    from mlops import registry
    from mlops.serving.client import wait_for_version, wait_until_ready
    from mlops_datagen import generate_frames

    say(f"\n== {config.name}: monitoring and retraining on drift")
    frames = [
        frame
        for _, frame in generate_frames(
            config.name, batches=4, rows=400, seed=21, feature_drift=2.0, drift_from=1
        )
    ]
    windows = [
        ("traffic like the training data", "ok"),
        ("drift injected: cells measure larger (a recalibrated device)", "warn"),
        ("the drift goes on", "retrain"),
    ]
    monitoring_dag = bag.get_dag(config.monitoring_dag_id)
    ok = True

    def monitor(title: str, frame: Any, tag: str, expect: str, number: int) -> dict[str, Any]:
        nonlocal ok
        start = datetime.now(UTC)
        failures = _replay(url, config, frame, tag)
        end = datetime.now(UTC)
        logged = _wait_for_log(config, start, end, len(frame))
        with _quiet(log_path):
            dag_run = monitoring_dag.test(run_conf={"start": start.isoformat(), "end": end.isoformat()})
        outcome = {}
        request = {}
        for ti in dag_run.get_task_instances():
            if ti.task_id == "analyze" and str(ti.state) == "success":
                outcome = ti.xcom_pull(task_ids="analyze")
            if ti.task_id == "request_retraining" and str(ti.state) == "success":
                request = ti.xcom_pull(task_ids="request_retraining")
        status = outcome.get("status", "failed")
        good = status == expect and not failures and logged
        ok &= good
        say(
            f"   {number}/6 {title}: {len(frame)} requests with labels -> monitoring says {status.upper()} "
            f"[{'ok' if good else 'UNEXPECTED'}]"
        )
        reasons = outcome.get("reasons", [])
        for reason in reasons[:2] + reasons[-1:] if len(reasons) > 2 else reasons:
            say(f"       {reason if len(reason) < 160 else reason[:157] + '...'}")
        if outcome.get("report_uri"):
            say(f"       report: {outcome['report_uri']}")
        return request

    with _model_server(config, log_path) as url:
        if not wait_until_ready(url):
            say("   the server did not become ready within 90 s (see the log)")
            return False
        request: dict[str, Any] = {}
        for number, ((title, expect), frame) in enumerate(zip(windows, frames, strict=False), 1):
            request = monitor(title, frame, f"w{number}", expect, number)
        if not request:
            say("   no retraining was requested [UNEXPECTED]")
            return False
        say(f"   4/6 the Asset event {config.name}_retrain asks {config.training_dag_id} to retrain:")
        say(
            f"       data {request['data_uri']} ({request['training_window']}), reason: {request['reason'][:90]}"
        )
        before = registry.alias_version(config.name, registry.CHAMPION)
        with _quiet(log_path):
            # What the scheduler does on the event: a training run whose request is the event's extra.
            dag_run = bag.get_dag(config.training_dag_id).test(run_conf={"model": None, **request})
        outcome, detail = _outcome(dag_run)
        new = registry.alias_version(config.name, registry.CHAMPION)
        followed = new != before and wait_for_version(url, new)
        ok &= outcome == "promoted" and followed
        say(
            f"   5/6 retrained: {detail}; the server serves v{new} "
            f"[{'ok' if outcome == 'promoted' and followed else 'UNEXPECTED'}]"
        )
        monitor("the same drifted traffic, against the new champion", frames[3], "w4", "ok", 6)
    return ok


def governance_story(pipeline: str, say: Callable[[str], None]) -> None:
    """Print the champion's (or latest version's) model card summary and the pipeline's audit trail."""
    from mlops import registry
    from mlops.registry import cards
    from mlops.registry.governance import audit_report, render_audit

    records = audit_report(pipeline)
    if not records:
        say(f"{pipeline}: no registered versions yet")
        return
    champion = registry.alias_version(pipeline, registry.CHAMPION)
    version = champion if champion is not None else records[-1].version
    card = cards.build_card(pipeline, version)
    say(f"Model card of {pipeline} v{version} ({card.semver or 'no semver'}):")
    for line in card.summary_lines():
        say(f"   {line}")
    say(f"   full card: mlops card {pipeline} {version} --html --output card.html")
    say(f"Audit trail of {pipeline} (mlops audit {pipeline}):")
    for line in render_audit(records, "table").splitlines():
        say(f"   {line}")
