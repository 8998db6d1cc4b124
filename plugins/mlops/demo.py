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
        return "validation_failed", "validation failed, batch quarantined, alert sent"
    if states.get("deploy") == "success":
        return "promoted", "gate passed, promoted"
    if states.get("gate_rejected") == "success":
        return "rejected", "gate rejected, champion kept"
    failed = [task for task, state in states.items() if state == "failed"]
    return "failed", f"run {dag_run.state}; failed tasks: {', '.join(failed) or 'none'}"


def _registry_facts(config: PipelineConfig) -> dict[str, Any]:
    from mlops import registry

    mlflow_client = registry.client()
    versions = sorted(
        mlflow_client.search_model_versions(f"name='{config.name}'"), key=lambda v: int(v.version)
    )
    champion = registry.alias_version(config.name, registry.CHAMPION)
    metric = config.gate.primary_metric
    verdicts = ", ".join(f"v{v.version} {v.tags.get('gate.verdict', '-')}" for v in versions)
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

    say("\nSummary")
    header = f"{'pipeline':<18} {'versions':>8} {'champion':>9}  {'verdicts':<36} primary metric (champion)"
    say(header)
    say("-" * len(header))
    all_ok = True
    for story in stories:
        facts = _registry_facts(story.config)
        all_ok &= all(step.as_expected for step in story.steps)
        say(
            f"{story.config.name:<18} {facts['versions']:>8} {'v' + str(facts['champion']):>9}  "
            f"{facts['verdicts']:<36} {facts['metric']}"
        )
    say(f"\nDone in {time.monotonic() - started:.0f} s. Airflow's own output: {log_path}")
    say("Quarantined batches, validation results and reports: " + str(home / "store"))
    say("See it in the UIs:  mlops ui" + (f" --home {home}" if home != settings.mlops_home() else ""))
    say("  Airflow http://127.0.0.1:8080 (user admin, password printed by the command)")
    say("  MLflow  http://127.0.0.1:5000 (models, versions with gate verdicts and audit tags)")
    if not all_ok:
        say("\nSome steps did not end as the story expects: see UNEXPECTED above and the log.")
        return 1
    return 0
