"""The demo story, run through Airflow (``dag.test``) on the embedded default.

For every example pipeline: a first batch becomes champion v1; a corrupted batch is rejected at validation and
quarantined (alert logged, champion unchanged); a new batch trains a challenger that passes the gate and becomes
champion v2; a deliberately worse model is rejected by the gate. Airflow's own output goes to a log file; the
screen shows the story and a summary table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mlops import settings
from mlops.config import PipelineConfig, load_all

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
    expect: str  # "promoted" | "validation_failed" | "rejected"
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
    airflow = Path(sys.executable).parent / "airflow"
    started = time.monotonic()
    result = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stderr[-2000:]}")
    say(f"Airflow metadata database ready (SQLite, {time.monotonic() - started:.0f} s)")


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
            say(f"   {number}/4 {step.title}: triggering {dag.dag_id} ...")
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
    say(f"\nDone in {time.monotonic() - started:.0f} s. Airflow's own output: {log_path}")
    say("Quarantined batches, validation results and reports: " + str(home / "store"))
    say("See it in the UIs:  mlops ui" + (f" --home {home}" if home != settings.mlops_home() else ""))
    say("  Airflow http://127.0.0.1:8080 (user admin, password printed by the command)")
    say("  MLflow  http://127.0.0.1:5000 (models, versions with gate verdicts and audit tags)")
    if not (all_ok and serving_ok):
        say("\nSome steps did not end as the story expects: see UNEXPECTED above and the log.")
        return 1
    return 0


def _serving_story(bag: Any, config: PipelineConfig, home: Path, log_path: Path, say: Any) -> bool:
    """Start the model server; it answers, follows a new champion without a restart, keeps serving while a
    broken challenger is caught, and follows a rollback."""
    import signal
    import socket

    import httpx
    import pandas as pd

    from mlops import registry
    from mlops.deploy import rollback
    from mlops.serving.client import LiveTraffic, wait_for_version, wait_until_ready

    port = config.serving.port
    with socket.socket() as probe:
        try:  # the configured port, so the deploy step's "reload now" reaches the server; else any free one
            probe.bind(("127.0.0.1", port))
        except OSError:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    say(f"\n== {config.name}: the model server")
    records = (
        pd.read_csv(home / "landing" / config.name / "2026-01-02.csv")[config.feature_names]
        .head(200)
        .to_dict("records")
    )
    mlops_bin = Path(sys.executable).parent / "mlops"
    with log_path.open("ab") as server_log:
        server = subprocess.Popen(
            [str(mlops_bin), "serve", config.name, "--port", str(port)], stdout=server_log, stderr=server_log
        )
    ok = True
    try:
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
        p50 = (
            sorted(traffic.latencies)[len(traffic.latencies) // 2] * 1000
            if traffic.latencies
            else float("nan")
        )
        ok &= not traffic.failures
        say(
            f"   live traffic during all of it: {sum(traffic.versions.values())} answers ({seen}), "
            f"{len(traffic.failures)} failed, p50 {p50:.1f} ms [{'ok' if not traffic.failures else 'UNEXPECTED'}]"
        )
        for failure in traffic.failures[:3]:
            say(f"     failed: {failure}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    from mlops.serving.inference_log import inference_log_uri, read_inference_log

    logged = read_inference_log(inference_log_uri(config.name, config.serving.inference_log.uri), config.name)
    say(f"   the server stopped (SIGTERM) and its inference log holds {len(logged)} predictions")
    return ok and len(logged) > 0
