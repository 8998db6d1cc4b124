"""Our model server against ``mlflow models serve``: same machine, same model version, same load, one run.

    .venv/bin/python bench/serving_benchmark.py [--duration S] [--warmup S] [--profile | --no-profile]

1. In a temporary ``MLOPS_HOME``: one generated ``breast_cancer`` batch is ingested, validated, trained on
   (StandardScaler + LogisticRegression), registered and promoted to ``champion`` with the kit's own functions.
2. The floor: raw in-process ``model.predict`` of that version (``mlflow.sklearn.load_model``), 1 and 100 rows.
3. Our server (``mlops serve breast_cancer``), then the MLflow scoring server (``mlflow models serve -m
   models:/breast_cancer@champion --env-manager local``), one at a time on a free 127.0.0.1 port. Each is
   waited for until ready; our answer is checked against the raw predictions first (the MLflow one too).
   Then ``wrk`` (C, light on the CPU) posts the same rows for batch sizes 1 and 100 at concurrency 1
   (``-t1 -c1``) and 32 (``-t2 -c32``), ``--timeout 10s``, each cell after a discarded warm-up.
4. The goals, judged honestly; where our server's time goes: an in-process timing of each step of a request
   and of the whole ASGI app; and, when a goal is missed (or with ``--profile``), our server again on the
   missed load shapes in diagnostic variants (as served, inference log off, ``gc.freeze()`` once ready), with
   per-thread CPU and garbage-collection pauses, and under cProfile.
5. Section ``serving`` of ``docs/benchmarks.md`` is rewritten; the rest of the file is kept.

Needs ``wrk``: ``apt-get install -y wrk`` (Debian/Ubuntu, as root), ``brew install wrk`` (macOS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markdown_sections import git, load_average, machine_facts, write_section

REPO = Path(__file__).resolve().parent.parent
PIPELINES_DIR = REPO / "include" / "pipelines"
BIN_DIR = Path(sys.executable).parent
WRK_SCRIPT = Path(__file__).resolve().with_name("serving_wrk.lua")
SECTION = "serving"
PIPELINE = "breast_cancer"
BATCH_SIZES = (1, 100)
#: Concurrency -> wrk threads and connections.
LOADS = {1: ("-t1", "-c1"), 32: ("-t2", "-c32")}
WRK_TIMEOUT = "10s"
READY_TIMEOUT = 180.0
OURS, MLFLOW = "ours", "mlflow"
SERVER_TITLES = {OURS: "ours (`mlops serve`)", MLFLOW: "MLflow (`mlflow models serve`)"}
# Goals.
SPEEDUP_GOAL = 20.0  # batch 1, concurrency 32: at least 20x MLflow's requests/s ...
P99_GOAL = 10.0  # ... with p99 at most a tenth of MLflow's
PER_ROW_GOAL = 2.0  # batch 100: per-row cost within 2x of raw per-row predict
P50_GOAL_MS = 3.0  # concurrency 1: p50 under 3 ms

# Our server as `mlops serve` runs it (`mlops.serving.app.run`), instrumented for the diagnostics: SIGUSR1 starts
# a measurement, SIGUSR2 ends it and writes <prefix>.<n>.json (CPU seconds per thread, garbage collections and
# their pauses, tracked objects) and, for variant "profile", <prefix>.<n>.prof (cProfile of the main thread).
# Variants change one thing: "no_log" turns the inference log off, "freeze" calls gc.freeze() once ready.
CHILD_DIAGNOSTIC_SERVER = """
import cProfile, gc, json, os, signal, sys, threading, time, urllib.request
from mlops.config import load_config
from mlops.serving.app import run

config_path, port, prefix, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
TICKS = os.sysconf("SC_CLK_TCK")
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
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "threads not started by Python")
        cpu[name] = cpu.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
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
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                if answer.status == 200:
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


# --- the model ------------------------------------------------------------------------------------------------


@dataclass
class Trained:
    version: int
    config: Any
    records: list[dict[str, float]]  # feature rows as JSON-ready dicts, the order of the generated batch
    seconds: float


def set_environment(home: Path) -> None:
    """Point this process (and the servers started from it) at a fresh home; nothing else leaks in."""
    for key in list(os.environ):
        if key.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_")):
            del os.environ[key]
    os.environ["MLOPS_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    os.environ["MLOPS_PIPELINES_DIR"] = str(PIPELINES_DIR)


def train_and_promote(home: Path) -> Trained:
    """Generate one batch, ingest, validate, train, register and promote it: version 1 is the champion."""
    import pandas as pd

    from mlops import batches, registry, training
    from mlops.config import load_config
    from mlops_datagen import generate_batches

    started = time.perf_counter()
    config = load_config(PIPELINES_DIR / f"{PIPELINE}.yaml")
    (path,) = generate_batches(PIPELINE, home / "landing" / PIPELINE, batches=1)
    batch = batches.ingest_batch(config, str(path))
    outcome = batches.validate_and_file(config, batch)
    result = training.train_model(config, outcome.batch)
    version = registry.register_version(config.name, result.model_uri, result.run_id, {"bench": "serving"})
    registry.promote(
        config.name, version, None, audit={"by": "bench/serving_benchmark.py", "reason": "benchmark"}
    )
    frame = training.prepare_frame(pd.read_csv(path), config)[config.feature_names]
    records = frame.to_dict(orient="records")
    if len(records) < max(BATCH_SIZES):
        raise RuntimeError(f"the generated batch holds {len(records)} rows; need {max(BATCH_SIZES)}")
    return Trained(version, config, records, time.perf_counter() - started)


# --- the floor -------------------------------------------------------------------------------------------------


@dataclass
class Floor:
    calls: int
    one_row: float  # seconds, median of one call
    hundred_rows: float
    one_row_quick: float  # under the sklearn settings our server uses (context only)
    hundred_rows_quick: float
    other_cores: float = 0.0  # what other processes used meanwhile

    @property
    def per_row(self) -> float:
        return self.hundred_rows / 100


def median_call(function: Callable[[], Any], calls: int) -> float:
    for _ in range(min(50, calls)):
        function()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_floor(model: Any, trained: Trained, calls: int) -> Floor:
    """Median time of ``model.predict`` on a DataFrame of 1 and of 100 rows, in this process."""
    import pandas as pd
    import sklearn

    names = trained.config.feature_names
    one = pd.DataFrame.from_records(trained.records[:1], columns=names)
    hundred = pd.DataFrame.from_records(trained.records[:100], columns=names)
    result = [median_call(lambda f=f: model.predict(f), calls) for f in (one, hundred)]
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        quick = [median_call(lambda f=f: model.predict(f), calls) for f in (one, hundred)]
    return Floor(calls, result[0], result[1], quick[0], quick[1])


def raw_predictions(model: Any, trained: Trained, rows: int) -> list[Any]:
    import pandas as pd

    frame = pd.DataFrame.from_records(trained.records[:rows], columns=trained.config.feature_names)
    return model.predict(frame).tolist()


# --- where a request's time goes, without HTTP -------------------------------------------------------------------


def request_steps(trained: Trained, calls: int) -> dict[int, dict[str, float]]:
    """Median seconds of each step our server takes for one request of 1 and of 100 rows, in this process.

    The same functions the server calls, on the same version (loaded as the server loads it); what HTTP,
    uvicorn, FastAPI, the micro-batcher's hand-offs, the inference log and the metrics add is not in here.
    """
    import numpy as np
    import sklearn

    from mlops.serving.holder import CHAMPION, load_version

    loaded = load_version(trained.config, trained.version, CHAMPION)
    steps: dict[int, dict[str, float]] = {}
    for rows in BATCH_SIZES:
        body = json.dumps({"records": trained.records[:rows]}).encode()
        parsed = loaded.schema.parse(body)
        frame = parsed.frame
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            predicted = loaded.model.predict(frame)
            timings = {
                "`json.loads` of the body": median_call(lambda b=body: json.loads(b), calls),
                "`InputSchema.parse` (json.loads + checks + arrays)": median_call(
                    lambda b=body: loaded.schema.parse(b), calls
                ),
                "`ParsedInput.frame` (DataFrame)": median_call(lambda p=parsed: p.frame, calls),
                "`model.predict` (server's sklearn settings)": median_call(
                    lambda f=frame: loaded.model.predict(f), calls
                ),
            }
        answer = {
            "predictions": np.asarray(predicted).tolist(),
            "model_version": loaded.version,
            "model": loaded.name,
            "request_id": "0" * 32,
        }
        timings["answer: `tolist` + `json.dumps`"] = median_call(
            lambda a=answer, p=predicted: (
                np.asarray(p).tolist(),
                json.dumps(a, separators=(",", ":"), allow_nan=False),
            ),
            calls,
        )
        steps[rows] = timings
    return steps


# --- servers ---------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: list[str]
    ready_path: str
    predict_path: str
    body_key: str
    process: subprocess.Popen | None = None
    port: int = 0
    ready_seconds: float = 0.0
    rss_mib: float | None = None
    check: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start(server: Server, env: dict[str, str], log_path: Path) -> None:
    """Start ``server`` in its own session (so that it and its children can be stopped together); wait until ready."""
    server.port = free_port()
    command = [part.replace("{port}", str(server.port)) for part in server.command]
    started = time.perf_counter()
    with log_path.open("wb") as log:
        server.process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = started + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode} before it was ready:\n"
                + log_path.read_text(errors="replace")[-3000:]
            )
        with contextlib.suppress(OSError):
            status, _ = http(server.base + server.ready_path, timeout=2)
            if status == 200:
                server.ready_seconds = time.perf_counter() - started
                return
        time.sleep(0.1)
    stop(server)
    raise RuntimeError(f"{server.name} not ready after {READY_TIMEOUT:.0f} s; see {log_path}")


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (the process we started and its children), SIGKILL if it lingers."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # A child that outlived its parent still holds the group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def group_rss_mib(pgid: int) -> float | None:
    """Resident memory of every process in group ``pgid`` (the server and its children)."""
    total = 0
    found = False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # pgrp is the 5th field of /proc/PID/stat, the 3rd after "(comm)"
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    found = True
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024 if found else None


def check_answer(server: Server, trained: Trained, expected: dict[int, list[Any]]) -> str:
    """POST the benchmark's rows once per batch size and compare with the raw predictions."""
    notes = []
    for rows in BATCH_SIZES:
        body = json.dumps({server.body_key: trained.records[:rows]}).encode()
        status, raw = http(server.base + server.predict_path, body)
        if status != 200:
            raise RuntimeError(f"{server.name}: {rows} rows answered {status}: {raw[:500]!r}")
        answer = json.loads(raw)
        if answer.get("predictions") != expected[rows]:
            raise RuntimeError(
                f"{server.name}: the predictions of {rows} rows differ from raw predict: "
                f"{answer.get('predictions')!r:.300} != {expected[rows]!r:.300}"
            )
        if server.name == OURS and answer.get("model_version") != trained.version:
            raise RuntimeError(f"{server.name} served v{answer.get('model_version')}, not v{trained.version}")
        notes.append(f"{rows}")
    version = f", `model_version` {trained.version}" if server.name == OURS else ""
    return f"predictions of {' and '.join(notes)} rows equal raw `predict`{version}"


# --- load ------------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    server: str
    batch: int
    concurrency: int
    result: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # cores used on average: server, wrk, other
    attempt: int = 1
    predict_calls: float | None = None  # ours: model.predict calls during the cell (its micro-batches)
    extra: dict[str, Any] = field(default_factory=dict)  # what a diagnostic server reported

    @property
    def seconds(self) -> float:
        return self.result["duration_us"] / 1e6

    @property
    def requests_per_second(self) -> float:
        return self.result["requests"] / self.seconds

    @property
    def rows_per_second(self) -> float:
        return self.requests_per_second * self.batch

    @property
    def p50(self) -> float:
        return self.result["p50_us"] / 1e6

    @property
    def p99(self) -> float:
        return self.result["p99_us"] / 1e6

    @property
    def rows_per_predict(self) -> float | None:
        if not self.predict_calls:
            return None
        return self.result["requests"] * self.batch / self.predict_calls

    @property
    def errors(self) -> int:
        return int(sum(self.result[k] for k in ("connect", "read", "write", "status", "timeout")))

    def error_detail(self) -> str:
        kinds = [f"{k} {int(self.result[k])}" for k in ("connect", "read", "write", "status", "timeout")]
        return ", ".join(k for k in kinds if not k.endswith(" 0")) or "none"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def system_busy_seconds() -> float:
    """CPU seconds all cores spent working since boot (``/proc/stat``; time stolen by the hypervisor excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the live processes of group ``pgid`` (the server and its children)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / CLOCK_TICKS


def rusage_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """Who used the cores during a measurement: the server's process group, wrk, and everything else."""

    def __init__(self, pgid: int | None) -> None:
        self.pgid = pgid

    def __enter__(self) -> CpuMeter:
        self.wall = time.perf_counter()
        self.busy = system_busy_seconds()
        self.server = group_cpu_seconds(self.pgid) if self.pgid is not None else 0.0
        self.children = rusage_seconds(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
        self.own = rusage_seconds(resource.RUSAGE_SELF)
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.perf_counter() - self.wall
        busy = system_busy_seconds() - self.busy
        server = group_cpu_seconds(self.pgid) - self.server if self.pgid is not None else 0.0
        wrk = rusage_seconds(resource.RUSAGE_CHILDREN) - self.children
        own = rusage_seconds(resource.RUSAGE_SELF) - self.own
        self.cores = {
            "server": server / wall,
            "wrk": wrk / wall,
            "other": max(0.0, busy - server - wrk - own) / wall,
        }


def batch_counters(server: Server) -> tuple[float, float] | None:
    """(rows, predict calls) so far from our server's ``mlops_serving_batch_rows`` histogram; None for MLflow."""
    if not server.name.startswith(OURS):
        return None
    status, raw = http(server.base + "/metrics")
    if status != 200:
        return None
    found = {}
    for line in raw.decode().splitlines():
        for suffix in ("sum", "count"):
            if line.startswith(f"mlops_serving_batch_rows_{suffix}{{") and 'alias="champion"' in line:
                found[suffix] = float(line.rsplit(" ", 1)[1])
    return (found["sum"], found["count"]) if len(found) == 2 else None


def run_wrk(wrk: str, url: str, body_file: Path, concurrency: int, seconds: float) -> dict[str, float]:
    threads, connections = LOADS[concurrency]
    command = [
        wrk,
        threads,
        connections,
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        WRK_TIMEOUT,
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    result = subprocess.run(
        command,
        env={**os.environ, "WRK_BODY_FILE": str(body_file)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("WRK-RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"wrk failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return json.loads(lines[-1].removeprefix("WRK-RESULT "))


@dataclass
class Quiet:
    """How long to wait for the other processes of a shared machine to leave the cores alone."""

    threshold: float  # cores others may use
    wait: float  # seconds to wait for that before each cell
    retries: int  # extra attempts of a cell that shared the cores anyway
    budget: float  # seconds of waiting and retrying left for the whole run


def busy_cores(seconds: float = 2.0) -> float:
    before, started = system_busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    return (system_busy_seconds() - before) / (time.perf_counter() - started)


def wait_for_quiet(quiet: Quiet, what: str) -> float:
    """Wait (at most ``quiet.wait`` s) until the machine uses at most ``quiet.threshold`` cores; the last reading."""
    started = time.perf_counter()
    deadline = started + max(0.0, min(quiet.wait, quiet.budget))
    announced = False
    while True:
        busy = busy_cores(1.0 if quiet.budget <= 0 else 2.0)
        if busy <= quiet.threshold or time.perf_counter() >= deadline:
            quiet.budget -= time.perf_counter() - started
            if busy > quiet.threshold:
                print(f"    (still {busy:.2f} cores busy; measuring {what} anyway)", flush=True)
            return busy
        if not announced:
            print(f"    waiting for a quiet machine before {what} ({busy:.2f} cores busy) ...", flush=True)
            announced = True


def measure_server(
    server: Server,
    wrk: str,
    bodies: dict[int, Path],
    duration: float,
    warmup: float,
    quiet: Quiet,
    shapes: list[tuple[int, int]] | None = None,
    hooks: tuple[Callable[[], None], Callable[[], dict[str, Any]]] | None = None,
) -> list[Cell]:
    """Every cell (batch, concurrency) of one server; a cell that shared the cores is tried again.

    ``hooks``: called just before and just after each measured run; what the second returns is kept in the
    cell's ``extra``.
    """
    assert server.process is not None
    url = server.base + server.predict_path
    cells = []
    for batch, concurrency in shapes or [(b, c) for b in BATCH_SIZES for c in LOADS]:
        best: Cell | None = None
        for attempt in range(1 + quiet.retries):
            wait_for_quiet(quiet, f"{server.name} batch {batch} concurrency {concurrency}")
            if warmup > 0:
                run_wrk(wrk, url, bodies[batch], concurrency, warmup)
            before = batch_counters(server)
            if hooks is not None:
                hooks[0]()
            with CpuMeter(server.process.pid) as meter:
                result = run_wrk(wrk, url, bodies[batch], concurrency, duration)
            extra = hooks[1]() if hooks is not None else {}
            after = batch_counters(server)
            cell = Cell(server.name, batch, concurrency, result, meter.cores, attempt + 1, extra=extra)
            if before is not None and after is not None:
                cell.predict_calls = after[1] - before[1]
            per_call = f"  rows/predict {cell.rows_per_predict:.1f}" if cell.rows_per_predict else ""
            print(
                f"  {server.name:6} batch {batch:3} c{concurrency:<2}: {cell.requests_per_second:8.1f} req/s "
                f"{cell.rows_per_second:9.0f} rows/s  p50 {ms(cell.p50)}  p99 {ms(cell.p99)}  "
                f"errors {cell.errors}  CPU server {cell.cpu['server']:.2f} wrk {cell.cpu['wrk']:.2f} "
                f"other {cell.cpu['other']:.2f}{per_call}",
                flush=True,
            )
            if best is None or cell.cpu["other"] < best.cpu["other"]:
                best = cell
            if cell.cpu["other"] <= quiet.threshold:
                break
            if quiet.budget <= 0:
                print("    (no time left for retries: --quiet-budget)", flush=True)
                break
            quiet.budget -= cell.seconds + warmup
        assert best is not None
        cells.append(best)
    return cells


# --- the whole app in-process, without HTTP ----------------------------------------------------------------------


#: Functions of the request path timed inside the in-process app: (module, attribute, label). A method is
#: "Class.method". Each is wrapped at run time in this process only (the source is untouched) and restored after.
APP_PARTS = (
    ("mlops.serving.inputs", "InputSchema.parse", "`InputSchema.parse`: JSON decode, checks, arrays"),
    (
        "mlops.serving.batcher",
        "MicroBatcher.predict",
        "`MicroBatcher.predict`, awaited: queue, score, hand-offs",
    ),
    ("mlops.serving.batcher", "_score", "of which `_score`: DataFrame, `model.predict`, `tolist`"),
    ("mlops.serving.app", "ModelServer.log_rows", "`ModelServer.log_rows`: rows into the inference log"),
    ("mlops.serving.app", "_json", "`_json`: the answer"),
)
WHOLE = "the whole app, in-process"
REST = "the rest: FastAPI/Starlette routing and parameters, metrics middleware, request id, event loop"


@contextlib.contextmanager
def timed_parts(record: Callable[[str, float], None]) -> Iterator[list[str]]:
    """Wrap the functions of ``APP_PARTS`` so that each call reports its duration; yields the labels wrapped."""
    import functools
    import importlib
    import inspect

    restore = []
    wrapped = []
    for module_name, attribute, label in APP_PARTS:
        owner: Any = importlib.import_module(module_name)
        name = attribute
        if "." in attribute:
            class_name, name = attribute.split(".", 1)
            owner = getattr(owner, class_name, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            continue  # the code changed: that part is reported as not measured

        if inspect.iscoroutinefunction(original):

            async def wrapper(*args: Any, _f: Any = original, _l: str = label, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await _f(*args, **kwargs)
                finally:
                    record(_l, time.perf_counter() - started)

        else:

            def wrapper(*args: Any, _f: Any = original, _l: str = label, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return _f(*args, **kwargs)
                finally:
                    record(_l, time.perf_counter() - started)

        setattr(owner, name, functools.wraps(original)(wrapper))
        restore.append((owner, name, original))
        wrapped.append(label)
    try:
        yield wrapped
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)


def asgi_timings(trained: Trained, calls: int) -> dict[int, dict[str, float]]:
    """Median seconds of one ``POST /predict`` through our ASGI app called directly (no socket, no uvicorn),
    and of the parts of it (``APP_PARTS``) and the rest, per batch size.

    The app is built as ``mlops serve`` builds it (with its inference log, in the temporary home) and runs on
    the event loop uvicorn uses; only the alias polling is off. One request at a time, so the micro-batcher
    sees one request per batch.
    """
    import asyncio

    from mlops.serving.app import create_app
    from mlops.serving.inference_log import InferenceLog

    config = trained.config
    inference_log = InferenceLog.from_config(config)
    app = create_app(config, inference_log=inference_log, start_polling=False)
    server = app.state.server
    server.holder.refresh()
    server.holder.wait(120)
    if server.holder.champion is None:
        raise RuntimeError(f"the in-process app loaded no champion: {server.not_ready_reason()}")

    async def call(body: bytes) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/predict",
            "raw_path": b"/predict",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # the client never disconnects
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    timings: dict[str, list[float]] = {}

    def record(label: str, seconds: float) -> None:
        timings.setdefault(label, []).append(seconds)

    async def measure() -> dict[int, dict[str, float]]:
        result = {}
        with timed_parts(record) as wrapped:
            for rows in BATCH_SIZES:
                body = json.dumps({"records": trained.records[:rows]}).encode()
                for _ in range(50):
                    if (status := await call(body)) != 200:
                        raise RuntimeError(f"the in-process app answered {status} to {rows} rows")
                timings.clear()
                for _ in range(calls):
                    started = time.perf_counter()
                    await call(body)
                    record(WHOLE, time.perf_counter() - started)
                medians = {label: statistics.median(values) for label, values in timings.items()}
                # The rest, request by request (each part runs once per request here), then its median.
                outer = [label for label in wrapped if not label.startswith("of which")]
                if all(len(timings.get(label, [])) == calls for label in [*outer, WHOLE]):
                    rest = [
                        timings[WHOLE][i] - sum(timings[label][i] for label in outer) for i in range(calls)
                    ]
                    medians[REST] = statistics.median(rest)
                result[rows] = medians
        await server.close()
        return result

    try:  # the event loop uvicorn runs ours on ("auto" picks uvloop when it is installed)
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(measure())


# --- profile of our server -------------------------------------------------------------------------------------


@dataclass
class Profile:
    label: str
    batch: int
    concurrency: int
    requests: int
    wall: float
    busy: float  # main-thread seconds not waiting in epoll (inflated by the profiler)
    groups: list[tuple[str, float]]
    top_self: list[tuple[str, float, int]]
    top_ours: list[tuple[str, float, int]]


IDLE_FUNCTIONS = (
    "<method 'poll' of 'select.epoll' objects>",
    "<method 'control' of 'select.kqueue' objects>",
)


def group_of(filename: str, function: str) -> str:
    """A coarse owner of a profiled function: the package, our module, or the kind of builtin."""
    if filename == "~":
        if "numpy" in function:
            return "numpy (C)"
        if "json" in function or "_json" in function:
            return "json (C)"
        if "socket" in function or "transport" in function or "uvloop" in function:
            return "sockets (C)"
        return "other builtins (C)"
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        package = path.split("/site-packages/", 1)[1].split("/", 1)[0]
        return package.removesuffix(".py")
    if "/plugins/mlops/" in path:
        module = path.split("/plugins/", 1)[1].removesuffix(".py").replace("/", ".")
        return module
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 1)[1]
        return "stdlib " + module.split("/", 1)[0].removesuffix(".py")
    return path.rsplit("/", 1)[-1]


def short_thread(name: str) -> str:
    """``mlops-predict-champion_0`` -> ``predict worker``: the thread names our server gives, made short."""
    if name.startswith("mlops-predict-"):
        return "predict worker"
    if name.startswith("inference-log-"):
        return "log writer"
    if name.startswith("mlops-serving-poll-"):
        return "alias poller"
    if name == "MainThread":
        return "event loop"
    return name


def name_of(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":
        return function
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", "/plugins/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line} {function}"


def read_profile(path: Path, label: str, batch: int, concurrency: int, requests: int, wall: float) -> Profile:
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    busy = 0.0
    groups: dict[str, float] = {}
    rows = []
    for key, (_cc, calls, own, cumulative, _callers) in stats.items():
        if key[2] in IDLE_FUNCTIONS:
            continue
        busy += own
        group = group_of(key[0], key[2])
        groups[group] = groups.get(group, 0.0) + own
        rows.append((key, own, cumulative, calls))
    top_self = [(name_of(k), own, calls) for k, own, _c, calls in sorted(rows, key=lambda r: -r[1])[:10]]
    ours = [r for r in rows if "/plugins/mlops/" in r[0][0].replace("\\", "/")]
    top_ours = [(name_of(k), cum, calls) for k, _o, cum, calls in sorted(ours, key=lambda r: -r[2])[:10]]
    ordered = sorted(groups.items(), key=lambda item: -item[1])
    return Profile(label, batch, concurrency, requests, wall, busy, ordered, top_self, top_ours)


def diagnose(
    env: dict[str, str],
    wrk: str,
    bodies: dict[int, Path],
    shapes: list[tuple[int, int]],
    duration: float,
    warmup: float,
    quiet: Quiet,
    work: Path,
) -> tuple[list[Cell], list[Profile]]:
    """Our server again in each diagnostic variant, on the given load shapes (batch, concurrency)."""
    config_path = PIPELINES_DIR / f"{PIPELINE}.yaml"
    cells: list[Cell] = []
    profiles: list[Profile] = []
    for variant, title in VARIANTS.items():
        prefix = work / f"diagnostic-{variant}"
        server = Server(
            f"{OURS}:{variant}",
            [sys.executable, "-c", CHILD_DIAGNOSTIC_SERVER, str(config_path), "{port}", str(prefix), variant],
            "/ready",
            "/predict",
            "records",
        )
        print(f"    our server, {title} ...", flush=True)
        start(server, env, work / f"diagnostic-{variant}.log")
        measured = [0]

        def begin(server: Server = server) -> None:
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGUSR1)
            time.sleep(0.1)

        def end(
            server: Server = server, prefix: Path = prefix, measured: list[int] = measured
        ) -> dict[str, Any]:
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGUSR2)
            path = Path(f"{prefix}.{measured[0]}.json")
            deadline = time.perf_counter() + 60
            while not path.exists() and time.perf_counter() < deadline:
                time.sleep(0.1)
            info = json.loads(path.read_text()) if path.exists() else {}
            info["index"] = measured[0]
            measured[0] += 1
            return info

        try:
            found = measure_server(server, wrk, bodies, duration, warmup, quiet, shapes, (begin, end))
        finally:
            stop(server)
        for cell in found:
            if variant == "profile":
                path = Path(f"{prefix}.{cell.extra['index']}.prof")
                if path.exists():
                    label = f"batch {cell.batch}, concurrency {cell.concurrency}"
                    wall = cell.extra.get("wall", cell.seconds)
                    profiles.append(
                        read_profile(
                            path, label, cell.batch, cell.concurrency, int(cell.result["requests"]), wall
                        )
                    )
            else:
                cells.append(cell)
    return cells, profiles


# --- the machine -----------------------------------------------------------------------------------------------


def machine(wrk: str) -> dict[str, str]:
    facts = machine_facts(("mlflow", "uvicorn", "fastapi", "starlette", "scikit-learn", "numpy", "pandas"))
    version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.splitlines()
    facts["wrk"] = version[0].split(" Copyright")[0] if version else "unknown"
    facts["Code"] = code_version()
    facts["`OPENBLAS_CORETYPE`"] = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    return facts


def code_version() -> str:
    """The commit measured, and whether the serving code had uncommitted changes."""

    commit = git(REPO, "rev-parse", "--short", "HEAD") or "unknown"
    dirty = git(REPO, "status", "--porcelain", "--", "plugins/mlops/serving", "plugins/mlops/cli.py")
    return f"`{commit}`" + (" + uncommitted changes in `plugins/mlops/serving`" if dirty else "")


# --- the report ------------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def mark(passed: bool) -> str:
    return "**pass**" if passed else "**fail**"


@dataclass
class Goal:
    title: str
    measured: str
    passed: bool


def judge(cells: list[Cell], floor: Floor) -> tuple[list[Goal], list[tuple[int, int]]]:
    """The goals with their verdicts, and the load shapes (batch, concurrency) worth profiling."""
    at = {(c.server, c.batch, c.concurrency): c for c in cells}
    goals: list[Goal] = []
    shapes: list[tuple[int, int]] = []

    ours, peer = at[(OURS, 1, 32)], at[(MLFLOW, 1, 32)]
    speedup = ours.requests_per_second / peer.requests_per_second
    goals.append(
        Goal(
            f"batch 1, concurrency 32: ≥ {SPEEDUP_GOAL:.0f}× MLflow's requests/s",
            f"{ours.requests_per_second:.0f} vs {peer.requests_per_second:.0f} req/s: {speedup:.1f}×",
            speedup >= SPEEDUP_GOAL,
        )
    )
    ratio = peer.p99 / ours.p99
    goals.append(
        Goal(
            f"batch 1, concurrency 32: p99 ≤ 1/{P99_GOAL:.0f} of MLflow's",
            f"{ms(ours.p99)} vs {ms(peer.p99)}: 1/{ratio:.1f}",
            ratio >= P99_GOAL,
        )
    )
    if speedup < SPEEDUP_GOAL or ratio < P99_GOAL:
        shapes.append((1, 32))

    best = max((c for c in cells if c.server == OURS and c.batch == 100), key=lambda c: c.rows_per_second)
    per_row = 1 / best.rows_per_second
    goals.append(
        Goal(
            f"batch 100: per-row cost ≤ {PER_ROW_GOAL:.0f}× raw per-row `predict`",
            f"{us(per_row)} a row (concurrency {best.concurrency}) vs {us(floor.per_row)}: "
            f"{per_row / floor.per_row:.1f}×",
            per_row <= PER_ROW_GOAL * floor.per_row,
        )
    )
    if per_row > PER_ROW_GOAL * floor.per_row:
        shapes.append((100, best.concurrency))

    for batch in BATCH_SIZES:
        cell = at[(OURS, batch, 1)]
        goals.append(
            Goal(
                f"concurrency 1, batch {batch}: p50 < {P50_GOAL_MS:.0f} ms",
                ms(cell.p50),
                cell.p50 * 1000 < P50_GOAL_MS,
            )
        )
        if cell.p50 * 1000 >= P50_GOAL_MS and (batch, 1) not in shapes:
            shapes.append((batch, 1))
    return goals, shapes


def render(
    args: argparse.Namespace,
    facts: dict[str, str],
    loads: tuple[str, str],
    trained: Trained,
    servers: list[Server],
    cells: list[Cell],
    floor: Floor,
    steps: dict[int, dict[str, float]],
    goals: list[Goal],
    profiles: list[Profile],
    in_process: dict[int, dict[str, float]],
    quiet: Quiet,
    diagnostics: list[Cell],
) -> str:
    out: list[str] = []
    add = out.append
    at = {(c.server, c.batch, c.concurrency): c for c in cells}
    add("## Serving: our model server vs `mlflow models serve`\n")
    add(
        f"Measured by `bench/serving_benchmark.py` on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, in one "
        f"run on this machine. Model: `{PIPELINE}` v{trained.version} (StandardScaler + LogisticRegression, "
        f"{len(trained.config.feature_names)} numeric features), trained on one generated batch and promoted to "
        "`champion` in a temporary `MLOPS_HOME` (SQLite registry). Both servers serve that same version, one "
        "at a time on 127.0.0.1 (so they never compete for the cores), each with its default settings (one "
        "process). The load generator is `wrk` on the same machine: concurrency 1 is `-t1 -c1`, concurrency "
        f"32 is `-t2 -c32`; `--timeout {WRK_TIMEOUT} --latency`, {args.duration:.0f} s per cell after a "
        f'{args.warmup:.0f} s warm-up (discarded). Both get the same rows: ours as `{{"records": [...]}}` '
        'to `POST /predict`, MLflow as `{"dataframe_records": [...]}` to `POST /invocations`. wrk, the server '
        "and its threads share the 2 cores, the same for both servers. The machine may be shared: before each "
        f"cell the script waits (up to {quiet.wait:.0f} s) until other processes use at most "
        f"{quiet.threshold:.2f} cores, and a cell during which they used more is run again (up to "
        f"{quiet.retries} more times, {args.quiet_budget:.0f} s of waiting and retrying at most in all); the least "
        "disturbed attempt is kept and its CPU shares are shown.\n"
    )
    add(
        "**How to reproduce:** `apt-get install -y wrk`, then `.venv/bin/python bench/serving_benchmark.py` "
        "(`--duration S` per cell, default 10; `--profile` to profile our server even when every goal is met).\n"
    )
    add("| Machine | |\n| --- | --- |")
    for key, value in facts.items():
        add(f"| {key} | {value} |")
    add(f"| Load average (1/5/15 min) at start / end | {loads[0]} — {loads[1]} |\n")

    add("| Server | Command | Ready after start | RSS after the load | Answer checked |")
    add("| --- | --- | ---: | ---: | --- |")
    for server in servers:
        command = " ".join(server.command).replace(sys.executable, "python").replace(str(BIN_DIR) + "/", "")
        rss = f"{server.rss_mib:.0f} MiB" if server.rss_mib is not None else "n/a"
        add(
            f"| {SERVER_TITLES[server.name]} | `{command}` | {server.ready_seconds:.1f} s | {rss} | "
            f"{server.check} |"
        )
    add("")

    add("### Throughput and latency\n")
    add(
        "| Server | Batch (rows) | Concurrency | Requests/s | Rows/s | p50 | p99 | Errors | "
        "CPU: server / wrk / other (cores) | Rows per `predict` call |"
    )
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for batch in BATCH_SIZES:
        for concurrency in LOADS:
            for name in (OURS, MLFLOW):
                cell = at[(name, batch, concurrency)]
                errors = f"{cell.errors}" + (f" ({cell.error_detail()})" if cell.errors else "")
                per_call = cell.rows_per_predict
                add(
                    f"| {SERVER_TITLES[name]} | {batch} | {concurrency} | {cell.requests_per_second:,.0f} | "
                    f"{cell.rows_per_second:,.0f} | {ms(cell.p50)} | {ms(cell.p99)} | {errors} | "
                    f"{cell.cpu['server']:.2f} / {cell.cpu['wrk']:.2f} / {cell.cpu['other']:.2f} | "
                    + (f"{per_call:.1f} |" if per_call is not None else "— |")
                )
    add("")
    add(
        "Errors are wrk's: connect, read, write, timeout, and any answer that is not 2xx. Latency is wrk's, "
        "from sending a request to its last byte, on a kept-alive connection. CPU: cores used on average "
        "during the cell by the server's processes (all threads), by wrk, and by every other process on the "
        "machine (from `/proc`; the machine has 2 cores, so *other* > 0 means the cell shared them). Rows per "
        "`predict` call: the average micro-batch of our server during the cell (from its "
        "`mlops_serving_batch_rows` histogram); MLflow calls `predict` once per request.\n"
    )

    add("### The floor: raw `predict` in-process\n")
    add(
        '`mlflow.sklearn.load_model("models:/breast_cancer@champion")`, then `model.predict(DataFrame)` on the '
        f"same rows, median of {floor.calls} calls after 50 warm-up calls, in the benchmark's own process "
        "while no server runs.\n"
    )
    add("| Call | Default scikit-learn settings | Per row | With our server's settings* | Per row |")
    add("| --- | ---: | ---: | ---: | ---: |")
    add(
        f"| 1 row | {us(floor.one_row)} | {us(floor.one_row)} | {us(floor.one_row_quick)} | {us(floor.one_row_quick)} |"
    )
    add(
        f"| 100 rows | {us(floor.hundred_rows)} | {us(floor.per_row)} | {us(floor.hundred_rows_quick)} | "
        f"{us(floor.hundred_rows_quick / 100)} |"
    )
    add("")
    add(
        "\\* `sklearn.config_context(assume_finite=True, skip_parameter_validation=True)`, which our server "
        "uses since it checks the inputs itself. The goals compare with the default column.\n"
    )

    add("### Goals\n")
    add("| Goal | Measured | Verdict |\n| --- | --- | --- |")
    for goal in goals:
        add(f"| {goal.title} | {goal.measured} | {mark(goal.passed)} |")
    add("")
    add(
        "Per-row cost = 1 / rows per second at the concurrency that gives the most rows per second, against "
        "the raw per-row cost of a 100-row `predict` (default settings).\n"
    )

    add("### Where our server's time goes\n")
    add(
        "One request at a time through our app called in-process as an ASGI app (no socket, no uvicorn; built "
        "as `mlops serve` builds it, inference log included, on uvloop as under uvicorn), median of "
        f"{floor.calls} requests, with the functions of the request path timed in place (wrapped at run time "
        "in the benchmark's process; *the rest* is computed request by request). The rows marked *alone* "
        "were timed outside the app on the same data, for comparison. The last row is the p50 over HTTP from "
        "the table above: uvicorn, sockets and wrk come on top of the app.\n"
    )
    add("| Part of one request | " + " | ".join(f"batch {b}" for b in steps) + " |")
    add("| --- |" + " ---: |" * len(steps))

    def row(title: str, values: dict[int, float | None]) -> None:
        add(f"| {title} | " + " | ".join(us(v) if v is not None else "n/a" for v in values.values()) + " |")

    row("`json.loads` of the body, alone", {b: steps[b]["`json.loads` of the body"] for b in steps})
    for _module, _attribute, label in APP_PARTS:
        row(label, {b: in_process[b].get(label) for b in steps})
    row(
        "`model.predict` alone (the server's scikit-learn settings)",
        {b: steps[b]["`model.predict` (server's sklearn settings)"] for b in steps},
    )
    row(REST, {b: in_process[b].get(REST) for b in steps})
    add(f"| **{WHOLE}** | " + " | ".join(f"**{us(in_process[b][WHOLE])}**" for b in steps) + " |")
    row("p50 over HTTP at concurrency 1 (wrk → uvicorn → app)", {b: at[(OURS, b, 1)].p50 for b in steps})
    add("")
    add(
        "The parts are medians of their own, so they need not add up exactly. Timings of a few milliseconds "
        "on this machine vary by ±20 % between runs.\n"
    )
    if floor.other_cores > quiet.threshold:
        add(
            f"Other processes used {floor.other_cores:.2f} cores on average while these in-process timings and "
            "the floor ran.\n"
        )

    if diagnostics:
        add("#### Diagnostics: our server in variants, on the load shapes whose goal was missed\n")
        add(
            "Our server started again as `mlops serve` starts it (`mlops.serving.app.run`), with light "
            "instrumentation (a `gc.callbacks` timer and per-thread CPU from `/proc/self/task`), in variants that "
            "change one thing each: *as served*; *inference log off* (`run(..., log_inferences=False)`); "
            "*`gc.freeze()` once ready* (every object alive after the model is loaded is moved out of the "
            "collector's reach). CPU per request is per thread: the *event loop* (`MainThread`: HTTP, parsing, "
            "small batches' `predict`), the batcher's *predict worker* (`mlops-predict-*`: batches over 64 rows "
            "or slow ones), the inference log's *log writer* (`inference-log-*`: Parquet); one process runs "
            "Python code on one core at a time (the GIL).\n"
        )
        add(
            "| Variant | Batch | Concurrency | Requests/s | p50 | p99 | Rows per `predict` call | "
            "Full (gen 2) collections: count, longest pause | CPU per request by thread | Other processes (cores) |"
        )
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |")
        for cell in sorted(diagnostics, key=lambda c: (c.batch, -c.concurrency)):
            variant = cell.server.split(":", 1)[1]
            extra = cell.extra
            gc_full = extra.get("gc", {}).get("2", [0, 0.0, 0.0])
            requests = max(cell.result["requests"], 1)
            threads = sorted(extra.get("threads", {}).items(), key=lambda item: -item[1])
            per_thread = ", ".join(
                f"{short_thread(name)} {us(seconds / requests)}"
                for name, seconds in threads
                if seconds > 0.005
            )
            per_call = f"{cell.rows_per_predict:.1f}" if cell.rows_per_predict is not None else "—"
            add(
                f"| {VARIANTS[variant]} | {cell.batch} | {cell.concurrency} | {cell.requests_per_second:,.0f} | "
                f"{ms(cell.p50)} | {ms(cell.p99)} | {per_call} | {int(gc_full[0])}, {ms(gc_full[2])} | "
                f"{per_thread or '—'} | {cell.cpu['other']:.2f} |"
            )
        served = [c for c in diagnostics if c.server.endswith(":served")]
        if served:
            objects = served[0].extra.get("objects")
            frozen = next((c.extra.get("frozen") for c in diagnostics if c.extra.get("frozen")), None)
            add("")
            add(
                f"Objects the collector tracks in a serving process: {objects:,}"
                + (f"; `gc.freeze()` moved {frozen:,} of them out of its reach." if frozen else ".")
                + " A full collection walks all the tracked ones while every request waits.\n"
            )
        else:
            add("")

    if profiles:
        add(
            "cProfile of a server process (`mlops.serving.app.run`, the same app) under the same wrk load, for "
            "each load shape whose goal was missed. cProfile sees the main thread only: the event loop, HTTP, "
            "parsing and the small `predict` calls the batcher runs inline (≤ 64 rows); larger batches are "
            "predicted on a worker thread it does not see, and so is a small batch once the batcher's running "
            "average of `predict` exceeds 5 ms, which the profiler's own slowdown can cause. The profiler slows "
            "Python code down, so read the shares, not the absolute times. Time waiting in `epoll` (idle) is "
            "left out; time a thread waits to get the GIL back is counted in the function that released it "
            "(a socket send, `os.urandom`).\n"
        )
        for profile in profiles:
            per_request = profile.busy / max(profile.requests, 1)
            add(
                f"#### cProfile, {profile.label}: {profile.requests:,} requests in {profile.wall:.1f} s under the "
                f"profiler; {profile.busy:.2f} s busy on the main thread, {us(per_request)} a request\n"
            )
            add("| Owner (own time) | Share | Per request |\n| --- | ---: | ---: |")
            for group, seconds in profile.groups[:10]:
                add(f"| {group} | {seconds / profile.busy:.1%} | {us(seconds / max(profile.requests, 1))} |")
            add("")
            add("| Top functions by own time | Own time share | Calls per request |\n| --- | ---: | ---: |")
            for name, seconds, calls in profile.top_self:
                add(f"| `{name}` | {seconds / profile.busy:.1%} | {calls / max(profile.requests, 1):.2f} |")
            add("")
            add(
                "| Our functions by cumulative time | Share of busy time | Calls per request |\n"
                "| --- | ---: | ---: |"
            )
            for name, seconds, calls in profile.top_ours:
                add(f"| `{name}` | {seconds / profile.busy:.1%} | {calls / max(profile.requests, 1):.2f} |")
            add("")
    add("### Interpretation\n")
    add(interpret(cells, floor, goals, steps, quiet, diagnostics))
    return "\n".join(out) + "\n"


def interpret(
    cells: list[Cell],
    floor: Floor,
    goals: list[Goal],
    steps: dict[int, dict[str, float]],
    quiet: Quiet,
    diagnostics: list[Cell],
) -> str:
    at = {(c.server, c.batch, c.concurrency): c for c in cells}
    met = [g for g in goals if g.passed]
    text = f"{len(met)} of {len(goals)} goals met."
    missed = [g.title for g in goals if not g.passed]
    if missed:
        text += " Missed: " + "; ".join(missed) + "."
    ours1, peer1 = at[(OURS, 1, 1)], at[(MLFLOW, 1, 1)]
    ours32, peer32 = at[(OURS, 1, 32)], at[(MLFLOW, 1, 32)]
    text += (
        f" One row at a time, ours answers in {ms(ours1.p50)} (p50) against MLflow's {ms(peer1.p50)}; "
        f"under 32 concurrent one-row requests ours serves {ours32.requests_per_second:,.0f} requests/s "
        f"({ours32.requests_per_second / peer32.requests_per_second:.1f}× MLflow's "
        f"{peer32.requests_per_second:,.0f}), p99 {ms(ours32.p99)} vs {ms(peer32.p99)}."
    )
    best = max((c for c in cells if c.server == OURS and c.batch == 100), key=lambda c: c.rows_per_second)
    peer_best = max(
        (c for c in cells if c.server == MLFLOW and c.batch == 100), key=lambda c: c.rows_per_second
    )
    text += (
        f" With 100-row requests ours scores {best.rows_per_second:,.0f} rows/s (MLflow {peer_best.rows_per_second:,.0f}); "
        f"raw `predict` alone would do {1 / floor.per_row:,.0f} rows/s on one core at 100 rows a call."
    )
    predict_share = steps[1]["`model.predict` (server's sklearn settings)"] / max(ours1.p50, 1e-9)
    text += (
        f" At one row and concurrency 1, `predict` itself is {predict_share:.0%} of our p50; the rest is request "
        "handling."
    )
    if 100 in steps:
        floor_100 = (
            steps[100]["`json.loads` of the body"] + steps[100]["`model.predict` (server's sklearn settings)"]
        )
        text += (
            f" At 100 rows, decoding the JSON body and `predict` alone already take {ms(floor_100)} together "
            f"(timed outside the server), so a p50 under {P50_GOAL_MS:.0f} ms at that size is out of reach "
            "without a faster JSON decoder or a cheaper `predict`."
        )
    ours_cpu = [c.cpu["server"] for c in cells if c.server == OURS]
    if ours_cpu:
        text += (
            f" Our server used {min(ours_cpu):.2f}–{max(ours_cpu):.2f} cores in its cells: one process runs its "
            "Python code on one core at a time, so the machine's second core stayed nearly idle (wrk used "
            f"{max(c.cpu['wrk'] for c in cells):.2f} at most); MLflow's server is one process too."
        )
    by_variant = {(c.server.split(":", 1)[1], c.batch, c.concurrency): c for c in diagnostics}
    for batch, concurrency in sorted({(c.batch, c.concurrency) for c in diagnostics}):
        served = by_variant.get(("served", batch, concurrency))
        if served is None:
            continue
        parts = []
        full = served.extra.get("gc", {}).get("2", [0, 0.0, 0.0])
        if full[0]:
            parts.append(f"{int(full[0])} full garbage collections paused it for up to {ms(full[2])} each")
        if (no_log := by_variant.get(("no_log", batch, concurrency))) is not None:
            parts.append(
                f"without the inference log it served {no_log.requests_per_second:,.0f} requests/s instead of "
                f"{served.requests_per_second:,.0f} (p50 {ms(no_log.p50)} vs {ms(served.p50)}, p99 "
                f"{ms(no_log.p99)} vs {ms(served.p99)})"
            )
        if (frozen := by_variant.get(("freeze", batch, concurrency))) is not None:
            parts.append(
                f"with `gc.freeze()` once ready, {frozen.requests_per_second:,.0f} requests/s, p99 "
                f"{ms(frozen.p99)}"
            )
        if parts:
            text += f" Diagnostics at batch {batch}, concurrency {concurrency}: " + "; ".join(parts) + "."
    disturbed = [c for c in cells if c.cpu["other"] > quiet.threshold]
    if disturbed:
        listed = ", ".join(
            f"{c.server} batch {c.batch} c{c.concurrency} ({c.cpu['other']:.2f})" for c in disturbed
        )
        text += (
            f" Other processes used more than {quiet.threshold:.2f} cores during {len(disturbed)} of "
            f"{len(cells)} cells ({listed} cores): those numbers understate what the machine can do alone."
        )
    return text


# --- main ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per cell (default 10)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of discarded load before each cell"
    )
    parser.add_argument(
        "--floor-calls", type=int, default=2000, help="calls per in-process timing (default 2000)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "benchmarks.md", help="Markdown to update"
    )
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.25,
        help="cores other processes may use during a cell before it is tried again (default 0.25)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0, help="seconds to wait for a quiet machine before a cell"
    )
    parser.add_argument(
        "--retries", type=int, default=2, help="extra attempts of a cell that shared the cores (default 2)"
    )
    parser.add_argument(
        "--quiet-budget",
        type=float,
        default=900.0,
        help="seconds of waiting and retrying for a quiet machine in the whole run (default 900)",
    )
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--profile", action="store_true", help="profile our server even if every goal is met")
    choice.add_argument("--no-profile", action="store_true", help="never profile our server")
    args = parser.parse_args(argv)
    if args.duration < 1:
        parser.error("--duration must be at least 1 second")
    quiet = Quiet(args.quiet_cores, max(0.0, args.quiet_wait), max(0, args.retries), args.quiet_budget)

    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "wrk is not installed; this benchmark needs it as its load generator.\n"
            "  Debian/Ubuntu: apt-get install -y wrk   (as root, or with sudo)\n"
            "  macOS:         brew install wrk\n"
            "then run this script again.",
            file=sys.stderr,
        )
        return 2

    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="mlops-serving-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"
        (home / "tmp").mkdir(parents=True)
        set_environment(home)
        # The servers write their temporary model downloads under the home, removed with it.
        # PATH as in an activated venv: `mlflow models serve` runs `uvicorn` from the PATH.
        env = {
            **os.environ,
            "TMPDIR": str(home / "tmp"),
            "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        }

        print("1/5 training and promoting one breast_cancer model ...", flush=True)
        trained = train_and_promote(home)
        print(f"    v{trained.version} is the champion ({trained.seconds:.1f} s)", flush=True)

        print("2/5 the floor: raw in-process predict ...", flush=True)
        import mlflow.sklearn

        model = mlflow.sklearn.load_model(f"models:/{PIPELINE}@champion")
        expected = {rows: raw_predictions(model, trained, rows) for rows in BATCH_SIZES}
        for _attempt in range(1 + quiet.retries):
            wait_for_quiet(quiet, "the floor")
            with CpuMeter(None) as floor_cpu:
                floor = measure_floor(model, trained, args.floor_calls)
                steps = request_steps(trained, args.floor_calls)
                in_process = asgi_timings(trained, args.floor_calls)
            floor.other_cores = floor_cpu.cores["other"]
            if floor.other_cores <= quiet.threshold or quiet.budget <= 0:
                break
            print(f"    other processes used {floor.other_cores:.2f} cores meanwhile; again", flush=True)
        print(
            f"    1 row {us(floor.one_row)}, 100 rows {us(floor.hundred_rows)}; our app in-process: "
            + ", ".join(f"{rows} rows {us(parts[WHOLE])}" for rows, parts in in_process.items())
            + f" (other processes: {floor.other_cores:.2f} cores)",
            flush=True,
        )

        bodies: dict[str, dict[int, Path]] = {}
        for name, key in ((OURS, "records"), (MLFLOW, "dataframe_records")):
            bodies[name] = {}
            for rows in BATCH_SIZES:
                path = work / f"body-{name}-{rows}.json"
                path.write_text(json.dumps({key: trained.records[:rows]}), encoding="utf-8")
                bodies[name][rows] = path

        servers = [
            Server(
                OURS,
                [str(BIN_DIR / "mlops"), "serve", PIPELINE, "--host", "127.0.0.1", "--port", "{port}"],
                "/ready",
                "/predict",
                "records",
            ),
            Server(
                MLFLOW,
                [
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
                    "{port}",
                ],
                "/ping",
                "/invocations",
                "dataframe_records",
            ),
        ]
        cells: list[Cell] = []
        for number, server in enumerate(servers, start=3):
            print(f"{number}/5 {SERVER_TITLES[server.name]} ...", flush=True)
            start(server, env, work / f"{server.name}.log")
            try:
                print(f"    ready in {server.ready_seconds:.1f} s on port {server.port}", flush=True)
                server.check = check_answer(server, trained, expected)
                cells += measure_server(server, wrk, bodies[server.name], args.duration, args.warmup, quiet)
                assert server.process is not None
                server.rss_mib = group_rss_mib(server.process.pid)
            finally:
                stop(server)

        goals, shapes = judge(cells, floor)
        for goal in goals:
            print(f"    {'PASS' if goal.passed else 'FAIL'}  {goal.title}: {goal.measured}")
        profiles: list[Profile] = []
        diagnostics: list[Cell] = []
        if args.profile:
            shapes = [(1, 32), (100, 1), (1, 1)]
        if shapes and not args.no_profile:
            print(f"5/5 where our server's time goes, for {shapes} (batch, concurrency) ...", flush=True)
            diagnostics, profiles = diagnose(
                env, wrk, bodies[OURS], shapes, args.duration, args.warmup, quiet, work
            )
        else:
            print("5/5 no profile (every goal met, or --no-profile)", flush=True)
        loads = (load_start, load_average())

    section = render(
        args,
        machine(wrk),
        loads,
        trained,
        servers,
        cells,
        floor,
        steps,
        goals,
        profiles,
        in_process,
        quiet,
        diagnostics,
    )
    write_section(args.out, SECTION, section)
    print(section)
    print(f"Section '{SECTION}' of {args.out} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
