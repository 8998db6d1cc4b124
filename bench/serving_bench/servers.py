"""The servers under test: ours (``mlops serve``), MLflow's (``mlflow models serve``) and ours instrumented.

Each is a ``benchlib.servers.ServerProcess`` (its own process group, a free port, a log) that also knows where
it predicts and under which key it wants the rows.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.http import request
from benchlib.repo import BIN_DIR, PIPELINES_DIR
from benchlib.servers import PORT, ServerProcess

from serving_bench import BATCH_SIZES, MLFLOW, OURS, PIPELINE
from serving_bench.model import Trained

# Our server as `mlops serve` runs it (`mlops.serving.app.run`), instrumented for the diagnostics: SIGUSR1 starts
# a measurement, SIGUSR2 ends it and writes <prefix>.<n>.json (CPU seconds per thread from psutil, garbage
# collections and their pauses, tracked objects) and, for variant "profile", <prefix>.<n>.prof (cProfile of the
# main thread). Variants change one thing: "no_log" turns the inference log off, "freeze" calls gc.freeze() once
# ready.
CHILD_DIAGNOSTIC_SERVER = """
import cProfile, gc, json, os, signal, sys, threading, time
import psutil
from mlops.config import load_config
from mlops.serving.app import run

config_path, port, prefix, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
state = {"n": 0, "profiler": None, "cpu": {}, "started": 0.0, "gc_started": 0.0, "frozen": None}
pauses = {0: [], 1: [], 2: []}

def on_gc(phase, info):
    if phase == "start":
        state["gc_started"] = time.perf_counter()
    else:
        pauses[info["generation"]].append(time.perf_counter() - state["gc_started"])

def thread_cpu():
    names = {t.native_id: t.name for t in threading.enumerate()}
    cpu = {}
    for thread in psutil.Process().threads():
        name = names.get(thread.id, "threads not started by Python")
        cpu[name] = cpu.get(name, 0.0) + thread.user_time + thread.system_time
    return cpu

def begin(*_):
    for times in pauses.values():
        times.clear()
    state["cpu"] = thread_cpu()
    state["started"] = time.perf_counter()
    if variant == "profile":
        state["profiler"] = cProfile.Profile()
        state["profiler"].enable()

def end(*_):
    profiler, state["profiler"] = state["profiler"], None
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(f"{prefix}.{state['n']}.prof")
    wall = time.perf_counter() - state["started"]
    after = thread_cpu()
    result = {
        "wall": wall,
        "threads": {name: after[name] - state["cpu"].get(name, 0.0) for name in after},
        "gc": {str(g): [len(v), sum(v), max(v, default=0.0)] for g, v in pauses.items()},
        "objects": len(gc.get_objects()),
        "frozen": state["frozen"],
    }
    with open(f"{prefix}.{state['n']}.json.partial", "w") as out:
        json.dump(result, out)
    os.replace(f"{prefix}.{state['n']}.json.partial", f"{prefix}.{state['n']}.json")
    state["n"] += 1

def freeze_when_ready():
    import httpx  # only this variant polls, so only it pays the import

    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2, trust_env=False).status_code == 200:
                break
        except Exception:
            pass
        time.sleep(0.1)
    gc.collect()
    gc.freeze()
    state["frozen"] = gc.get_freeze_count()

gc.callbacks.append(on_gc)
signal.signal(signal.SIGUSR1, begin)
signal.signal(signal.SIGUSR2, end)
if variant == "freeze":
    threading.Thread(target=freeze_when_ready, name="freeze-when-ready", daemon=True).start()
run(load_config(config_path), "127.0.0.1", port, log_inferences=variant != "no_log", log_level="warning")
"""
#: Diagnostic variants of our server, in the order they run.
VARIANTS = {
    "served": "as served",
    "no_log": "inference log off",
    "freeze": "`gc.freeze()` once ready",
    "profile": "as served, under cProfile",
}


@dataclass(kw_only=True)
class Server(ServerProcess):
    """A server under test: how to start it, where it predicts, and what the benchmark found out about it."""

    predict_path: str
    body_key: str  # the key of the JSON body that holds the rows
    rss_mib: float | None = None  # resident memory of its processes after the load
    check: str = ""  # how its answer compared with raw predict


def our_server(name: str = OURS) -> Server:
    """``mlops serve breast_cancer`` as a user starts it (``name``: the variant, started with its own env)."""
    return Server(
        name=name,
        command=[str(BIN_DIR / "mlops"), "serve", PIPELINE, "--host", "127.0.0.1", "--port", PORT],
        ready_path="/ready",
        predict_path="/predict",
        body_key="records",
    )


def without_journal(work: Path) -> Path:
    """A pipelines folder whose ``breast_cancer`` has the inference log's journal off (else the same)."""
    import yaml

    config = yaml.safe_load((PIPELINES_DIR / f"{PIPELINE}.yaml").read_text(encoding="utf-8"))
    config.setdefault("serving", {}).setdefault("inference_log", {})["journal"] = False
    folder = work / "pipelines-no-journal"
    folder.mkdir(exist_ok=True)
    (folder / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


def mlflow_server() -> Server:
    """``mlflow models serve`` of the same champion, in this environment (``--env-manager local``)."""
    return Server(
        name=MLFLOW,
        command=[
            str(BIN_DIR / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{PIPELINE}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            PORT,
        ],
        ready_path="/ping",
        predict_path="/invocations",
        body_key="dataframe_records",
    )


def diagnostic_server(variant: str, prefix: Path) -> Server:
    """Our server in diagnostic ``variant`` (of ``VARIANTS``); its measurements go to ``<prefix>.<n>.*``."""
    config_path = PIPELINES_DIR / f"{PIPELINE}.yaml"
    return Server(
        name=f"{OURS}:{variant}",
        command=[sys.executable, "-c", CHILD_DIAGNOSTIC_SERVER, str(config_path), PORT, str(prefix), variant],
        ready_path="/ready",
        predict_path="/predict",
        body_key="records",
    )


def check_answer(server: Server, trained: Trained, expected: dict[int, list[Any]]) -> str:
    """POST the benchmark's rows once per batch size and compare with the raw predictions."""
    notes = []
    for rows in BATCH_SIZES:
        body = json.dumps({server.body_key: trained.records[:rows]}).encode()
        status, raw = request(server.base + server.predict_path, body)
        if status != 200:
            raise RuntimeError(f"{server.name}: {rows} rows answered {status}: {raw[:500]!r}")
        answer = json.loads(raw)
        if answer.get("predictions") != expected[rows]:
            raise RuntimeError(
                f"{server.name}: the predictions of {rows} rows differ from raw predict: "
                f"{answer.get('predictions')!r:.300} != {expected[rows]!r:.300}"
            )
        if server.name.startswith(OURS) and answer.get("model_version") != trained.version:
            raise RuntimeError(f"{server.name} served v{answer.get('model_version')}, not v{trained.version}")
        notes.append(f"{rows}")
    version = f", `model_version` {trained.version}" if server.name.startswith(OURS) else ""
    return f"predictions of {' and '.join(notes)} rows equal raw `predict`{version}"


def batch_counters(server: Server) -> tuple[float, float] | None:
    """(rows, predict calls) so far from our server's ``mlops_serving_batch_rows`` histogram; None for MLflow."""
    if not server.name.startswith(OURS):
        return None
    status, raw = request(server.base + "/metrics")
    if status != 200:
        return None
    found = {}
    for line in raw.decode().splitlines():
        for suffix in ("sum", "count"):
            if line.startswith(f"mlops_serving_batch_rows_{suffix}{{") and 'alias="champion"' in line:
                found[suffix] = float(line.rsplit(" ", 1)[1])
    return (found["sum"], found["count"]) if len(found) == 2 else None
