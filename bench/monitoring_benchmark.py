"""A monitoring run's drift checks against a plain Evidently ``Report([DataDriftPreset()])``: same frames, one run.

    .venv/bin/python bench/monitoring_benchmark.py [--rows N] [--reference-rows N] [--no-write]

1. Frames: a current window of ``--rows`` rows (default 1,000,000) and a reference of ``--reference-rows`` rows
   (default 100,000), 20 features (14 numeric, 6 categorical: three pandas ``category`` columns, three of
   plain strings), from one seeded generator. Some columns drift clearly, some not at all, a few sit next to
   the 0.1 threshold of the default tests (normed Wasserstein, Jensen-Shannon), so that agreement is a real
   test; there are missing and infinite values, a numeric column with four distinct values and an integer
   one. Saved as Parquet in a temporary directory.
2. Each contender runs in its own fresh interpreter, one after the other (each after waiting, up to 2 minutes,
   for the machine to be quiet), which imports its libraries and reads the Parquet files before the clock
   starts, then hands back to the system the memory Arrow's allocator kept from decoding them. Time is the
   wall time of the work alone; memory is the process's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``),
   next to its RSS once the frames were loaded.
   - plain Evidently: ``Report([DataDriftPreset()], include_tests=True).run(current_data=current,
     reference_data=reference)`` and ``snapshot.dict()``; each column's decision is its drift test's status
     (``FAIL`` = drift), its method and score are the ``ValueDrift`` metric's.
   - ours, what a monitoring run does for data drift: ``mlops.drift.compute_drift`` on the full frames with the
     kit's default tests (``mlops.config.Drift()``), then the HTML report the way ``mlops.monitoring.write_report``
     draws it (``DataDriftPreset`` with the decided method and threshold per column, ``DataSummaryPreset``,
     ``save_html``) on a seeded sample of 20,000 rows per side.
3. Every column's decision (drift yes/no) and method must be the same in both; scores are compared too.
   Any difference is printed and recorded, and the script exits with status 1.
4. Section ``monitoring`` of ``docs/benchmarks.md`` is rewritten (unless ``--no-write``); the rest is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markdown_sections import git, load_average, machine_facts, write_section

from mlops.config import Monitoring

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
SECTION = "monitoring"
SEED = 20_261_127
ROWS = 1_000_000
REFERENCE_ROWS = 100_000
REPORT_ROWS = Monitoring().report_rows  # the default a monitoring run draws its report from
SPEEDUP_GOAL = 5.0  # at least 5x faster than the plain report ...
MEMORY_GOAL = 0.5  # ... with at most half its peak memory
QUIET_CORES = 0.3  # before each contender, wait until the machine uses at most this many cores ...
QUIET_WAIT = 120.0  # ... for at most this many seconds
SCORE_TOLERANCE = 1e-9  # relative; string categories are summed in hash order, so the last bits may differ
PLAIN, OURS = "plain", "ours"
TITLES = {
    PLAIN: "plain Evidently `Report([DataDriftPreset()])`",
    OURS: "ours: `compute_drift` + HTML report on a 20,000-row sample",
}


# --- the frames -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One generated feature: how both sides are drawn, and what a reader should expect of it."""

    name: str
    kind: str  # numeric | categorical
    expect: str  # clear drift | no drift | near the threshold
    description: str
    draw: Callable[[Any, int, bool], Any]  # (rng, rows, is_current) -> values


def _mix_for_distance(p: Any, towards: Any, target: float) -> Any:
    """The mixture ``(1-t)·p + t·towards`` whose Jensen-Shannon distance to ``p`` is ``target`` (bisection)."""
    import numpy as np
    from scipy.spatial import distance

    p, towards = np.asarray(p, dtype=float), np.asarray(towards, dtype=float)
    low, high = 0.0, 1.0
    for _ in range(60):
        t = (low + high) / 2
        if distance.jensenshannon(p, (1 - t) * p + t * towards) < target:
            low = t
        else:
            high = t
    mixed = (1 - t) * p + t * towards
    return mixed / mixed.sum()


def _with_missing(rng: Any, values: Any, nan: float, inf: float = 0.0) -> Any:
    import numpy as np

    values = values.astype(float)
    draw = rng.random(len(values))
    values[draw < nan] = np.nan
    values[(draw >= nan) & (draw < nan + inf / 2)] = np.inf
    values[(draw >= nan + inf / 2) & (draw < nan + inf)] = -np.inf
    return values


def _categories(rng: Any, rows: int, levels: list[str], p: Any, nan: float = 0.0) -> Any:
    import numpy as np

    values = rng.choice(np.array(levels, dtype=object), size=rows, p=np.asarray(p) / np.sum(p))
    if nan:
        values[rng.random(rows) < nan] = None
    return values


def columns() -> list[Column]:
    """The 20 features: 14 numeric, 6 categorical."""
    import numpy as np

    def normal_shift(shift: float, scale: float = 1.0, sigma: float = 1.0, mean: float = 0.0):
        # Normed Wasserstein of a location shift = shift / sigma; of a scale change s = (s - 1)·E|Z| ≈ 0.8·(s-1).
        return lambda rng, n, cur: rng.normal(
            mean + (shift * sigma if cur else 0.0), sigma * (scale if cur else 1), n
        )

    levels5 = [f"L{i}" for i in range(5)]
    p5 = [0.35, 0.25, 0.2, 0.12, 0.08]
    levels20 = [f"G{i:02d}" for i in range(20)]
    p20 = np.linspace(1.0, 0.1, 20)
    p20 = p20 / p20.sum()
    levels8 = [f"R{i}" for i in range(8)]
    p8 = np.array([0.22, 0.18, 0.15, 0.13, 0.11, 0.09, 0.07, 0.05])
    q8 = _mix_for_distance(p8, p8[::-1], 0.097)
    levels4 = ["web", "mobile", "store", "phone"]
    p4 = np.array([0.45, 0.3, 0.15, 0.1])
    q4 = _mix_for_distance(p4, p4[::-1], 0.103)
    levels50 = [f"city_{i:02d}" for i in range(50)]
    p50 = 1.0 / np.arange(1, 51)
    values4 = np.array([0.0, 1.0, 2.0, 3.0])
    pv = np.array([0.4, 0.3, 0.2, 0.1])
    qv = _mix_for_distance(pv, pv[::-1], 0.099)

    return [
        Column("n00", "numeric", "no drift", "normal(0, 1), same on both sides", normal_shift(0.0)),
        Column(
            "n01",
            "numeric",
            "no drift",
            "normal(50, 10), 1% missing and 0.2% ±inf on both sides",
            lambda rng, n, cur: _with_missing(rng, rng.normal(50, 10, n), 0.01, 0.002),
        ),
        Column(
            "n02",
            "numeric",
            "no drift",
            "lognormal(0, 0.5), same",
            lambda rng, n, cur: rng.lognormal(0, 0.5, n),
        ),
        Column(
            "n03", "numeric", "no drift", "uniform(0, 100), same", lambda rng, n, cur: rng.uniform(0, 100, n)
        ),
        Column("n04", "numeric", "clear drift", "normal, mean +0.5σ (W ≈ 0.5)", normal_shift(0.5, sigma=3.0)),
        Column("n05", "numeric", "clear drift", "normal, σ × 1.5 (W ≈ 0.4)", normal_shift(0.0, scale=1.5)),
        Column(
            "n06",
            "numeric",
            "clear drift",
            "exponential, scale 1 → 1.6 (W ≈ 0.6)",
            lambda rng, n, cur: rng.exponential(1.6 if cur else 1.0, n),
        ),
        Column(
            "n07", "numeric", "near the threshold", "normal, mean +0.097σ (W ≈ 0.097)", normal_shift(0.097)
        ),
        Column(
            "n08",
            "numeric",
            "near the threshold",
            "normal(100, 20), mean +0.103σ (W ≈ 0.103)",
            normal_shift(0.103, sigma=20.0, mean=100.0),
        ),
        Column(
            "n09",
            "numeric",
            "near the threshold",
            "exponential, scale 1 → 1.1 (W ≈ 0.1), 2% missing in the current window",
            lambda rng, n, cur: _with_missing(
                rng, rng.exponential(1.1 if cur else 1.0, n), 0.02 if cur else 0.0
            ),
        ),
        Column(
            "n10",
            "numeric",
            "near the threshold",
            "four values 0–3 (float): tested as categories, Jensen-Shannon ≈ 0.099",
            lambda rng, n, cur: rng.choice(values4, size=n, p=qv if cur else pv),
        ),
        Column(
            "n11",
            "numeric",
            "no drift",
            "Poisson(30), int64",
            lambda rng, n, cur: rng.poisson(30, n).astype("int64"),
        ),
        Column(
            "n12",
            "numeric",
            "no drift",
            "normal(0, 1), 5% missing in the current window only",
            lambda rng, n, cur: _with_missing(rng, rng.normal(0, 1, n), 0.05 if cur else 0.0),
        ),
        Column(
            "n13",
            "numeric",
            "clear drift",
            "two normal modes, weights 0.7/0.3 → 0.4/0.6",
            lambda rng, n, cur: np.where(
                rng.random(n) < (0.4 if cur else 0.7), rng.normal(-2, 1, n), rng.normal(2, 1, n)
            ),
        ),
        Column(
            "c0",
            "categorical",
            "no drift",
            "category, 5 levels, same",
            lambda rng, n, cur: _categories(rng, n, levels5, p5),
        ),
        Column(
            "c1",
            "categorical",
            "clear drift",
            "category, 20 levels, frequencies reversed",
            lambda rng, n, cur: _categories(rng, n, levels20, p20[::-1] if cur else p20),
        ),
        Column(
            "c2",
            "categorical",
            "near the threshold",
            "category, 8 levels, Jensen-Shannon ≈ 0.097, 1% missing",
            lambda rng, n, cur: _categories(rng, n, levels8, q8 if cur else p8, nan=0.01),
        ),
        Column(
            "c3",
            "categorical",
            "near the threshold",
            "strings, 4 levels, Jensen-Shannon ≈ 0.103, 2% missing",
            lambda rng, n, cur: _categories(rng, n, levels4, q4 if cur else p4, nan=0.02),
        ),
        Column(
            "c4",
            "categorical",
            "no drift",
            "strings, 50 levels (Zipf), same, 2% missing",
            lambda rng, n, cur: _categories(rng, n, levels50, p50, nan=0.02),
        ),
        Column(
            "c5",
            "categorical",
            "clear drift",
            "strings, 3 levels; a new level takes 30% of the current window",
            lambda rng, n, cur: _categories(
                rng, n, ["A", "B", "C", "NEW"], [0.35, 0.21, 0.14, 0.3] if cur else [0.5, 0.3, 0.2, 0.0]
            ),
        ),
    ]


CATEGORY_DTYPE = ("c0", "c1", "c2")  # pandas `category`; the other categorical columns are plain strings


def generate(rows: int, reference_rows: int, seed: int = SEED) -> tuple[Any, Any]:
    """(reference, current) frames; each column from its own seeded stream, so each is reproducible alone."""
    import numpy as np
    import pandas as pd

    specs = columns()
    streams = np.random.SeedSequence(seed).spawn(2 * len(specs))
    frames = []
    for side, (n, is_current) in enumerate(((reference_rows, False), (rows, True))):
        data = {}
        for i, spec in enumerate(specs):
            values = spec.draw(np.random.default_rng(streams[2 * i + side]), n, is_current)
            if spec.name in CATEGORY_DTYPE:
                values = pd.Categorical(values)
            data[spec.name] = values
        frames.append(pd.DataFrame(data))
    return frames[0], frames[1]


def write_frames(rows: int, reference_rows: int, workdir: Path) -> None:
    """Generate both frames, check that Evidently types them as the kit does, save them as Parquet."""
    reference, current = generate(rows, reference_rows)
    kinds = {spec.name: spec.kind for spec in columns()}
    inferred = {**evidently_types(reference), **evidently_types(current)}
    mismatched = {name: inferred[name] for name, kind in kinds.items() if inferred[name] != kind[:3]}
    if mismatched:
        raise RuntimeError(f"Evidently would not type these columns as the kit does: {mismatched}")
    reference.to_parquet(workdir / "reference.parquet", index=False)
    current.to_parquet(workdir / "current.parquet", index=False)
    (workdir / "kinds.json").write_text(json.dumps(kinds), encoding="utf-8")


def evidently_types(frame: Any) -> dict[str, str]:
    """The column types Evidently infers for a plain DataFrame (what ``Report.run`` does with one)."""
    from evidently.core.datasets import infer_column_type

    return {name: infer_column_type(frame[name]).value for name in frame.columns}


# --- the contenders, each in its own process -------------------------------------------------------------------


def rss_mib() -> float:
    """This process's resident memory now."""
    with Path("/proc/self/status").open(encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    """This process's peak resident memory so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def status_mib(field: str) -> float:
    """A memory figure of ``/proc/self/status`` (``VmRSS``, ``VmHWM``: the peak the kernel keeps per process)."""
    with Path("/proc/self/status").open(encoding="utf-8") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Start the peak-RSS count over from the current RSS (Linux: ``5`` into ``/proc/self/clear_refs``).

    ``ru_maxrss`` then reports the peak since this call, or the parent's RSS when this process was started if
    that is larger (the kernel keeps it); the parent stays small, so it never is.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return peak_mib() <= rss_mib() + 16


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def system_busy_seconds() -> float:
    """CPU seconds all cores spent working since boot (``/proc/stat``; time stolen by the hypervisor excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


class Stopwatch:
    """Wall time, this process's CPU time and the cores other processes used, from creation to ``stop``."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.cpu = cpu_seconds()
        self.busy = system_busy_seconds()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.started
        cpu = cpu_seconds() - self.cpu
        others = max(0.0, system_busy_seconds() - self.busy - cpu)
        return {"seconds": wall, "cpu_seconds": cpu, "other_cores": others / wall if wall > 0 else 0.0}


def run_plain(reference: Any, current: Any) -> dict[str, Any]:
    """Plain Evidently: the preset on the full frames; each column's method, score, threshold and test status."""
    from evidently import Report
    from evidently.legacy.calculations.stattests import registry
    from evidently.presets import DataDriftPreset

    calls = {"stat_tests": 0}
    call = registry.StatTest.__call__

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:  # one integer more per call: nothing to measure
        calls["stat_tests"] += 1
        return call(self, *args, **kwargs)

    registry.StatTest.__call__ = counted
    clock = Stopwatch()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=current, reference_data=reference
    )
    timing = clock.stop()
    registry.StatTest.__call__ = call
    peak = peak_mib()
    began = time.perf_counter()
    document = snapshot.dict()
    dict_seconds = time.perf_counter() - began
    names = {
        test.display_name: test.name
        for tests in registry._registered_stat_tests.values()
        for test in tests.values()
    }
    status = {
        test["metric_config"]["metric_id"]: test["status"]
        for test in document.get("tests", [])
        if test["metric_config"]["params"]["type"].endswith(":ValueDrift")
    }
    columns = {}
    for metric in document["metrics"]:
        config = metric["config"]
        if not config["type"].endswith(":ValueDrift"):
            continue
        columns[config["column"]] = {
            "method": names.get(config["method"], config["method"]),
            "method_display": config["method"],
            "threshold": config["threshold"],
            "score": float(metric["value"]),
            "status": status.get(metric["id"]),
        }
    return {
        **timing,
        "peak_mib": peak,
        "dict_seconds": dict_seconds,
        "stat_test_calls": calls["stat_tests"],
        "columns": columns,
    }


def run_ours(reference: Any, current: Any, kinds: dict[str, str], workdir: Path) -> dict[str, Any]:
    """A monitoring run's data drift: decisions on the full frames, the HTML report from a seeded sample."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    from mlops import drift
    from mlops.config import Drift

    config = Drift()
    tests = {
        name: config.numeric if kind == "numeric" else config.categorical for name, kind in kinds.items()
    }
    clock = Stopwatch()
    result = drift.compute_drift(reference, current, kinds, tests, share_threshold=config.share)
    drift_seconds = time.perf_counter() - clock.started
    drift_peak = peak_mib()
    # The report as mlops.monitoring.write_report draws it: a seeded sample per side, the decided tests.
    names = list(kinds)
    current_sample = (
        current.sample(n=REPORT_ROWS, random_state=SEED) if len(current) > REPORT_ROWS else current
    )
    reference_sample = (
        reference.sample(n=REPORT_ROWS, random_state=SEED) if len(reference) > REPORT_ROWS else reference
    )
    definition = DataDefinition(
        numerical_columns=[name for name in names if kinds[name] == "numeric"],
        categorical_columns=[name for name in names if kinds[name] == "categorical"],
    )
    report = Report(
        [
            DataDriftPreset(
                columns=names,
                per_column_method={name: result.columns[name].method for name in names},
                per_column_threshold={name: result.columns[name].threshold for name in names},
                drift_share=config.share,
            ),
            DataSummaryPreset(columns=names),
        ],
        include_tests=True,
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(current_sample[names], data_definition=definition),
        reference_data=Dataset.from_pandas(reference_sample[names], data_definition=definition),
    )
    run_seconds = time.perf_counter() - clock.started - drift_seconds
    html = workdir / "report.html"
    snapshot.save_html(str(html))
    timing = clock.stop()
    return {
        **timing,
        "peak_mib": peak_mib(),
        "drift_seconds": drift_seconds,
        "drift_peak_mib": drift_peak,
        "report_seconds": timing["seconds"] - drift_seconds,
        "report_run_seconds": run_seconds,
        "report_html_seconds": timing["seconds"] - drift_seconds - run_seconds,
        "html_mib": html.stat().st_size / 2**20,
        "workers": drift.drift_workers(),
        "columns": {
            name: {
                "method": column.method,
                "threshold": column.threshold,
                "score": column.score,
                "drifted": column.drifted,
            }
            for name, column in result.columns.items()
        },
    }


def child(contender: str, workdir: Path) -> None:
    """One contender in this (fresh) process: imports and frames first, then the timed work; JSON to a file."""
    import gc

    import pandas as pd
    import pyarrow

    if contender == PLAIN:
        import evidently.presets  # noqa: F401 - imported before the clock starts
    else:
        import evidently.presets  # noqa: F401
        from evidently.legacy.calculations import stattests  # noqa: F401

        import mlops.drift  # noqa: F401
    loaded = {"rss_imported_mib": rss_mib()}
    reference = pd.read_parquet(workdir / "reference.parquet")
    current = pd.read_parquet(workdir / "current.parquet")
    kinds = json.loads((workdir / "kinds.json").read_text(encoding="utf-8"))
    loaded.update(rss_read_mib=rss_mib(), peak_read_mib=peak_mib())
    # Reading is the same in both processes and part of neither contender: decoding Parquet leaves memory freed
    # but kept by Arrow's allocator (handed back here), and its buffers peak above the frames (the peak count
    # starts over once they are gone).
    gc.collect()
    pyarrow.default_memory_pool().release_unused()
    loaded.update(rss_loaded_mib=rss_mib(), peak_reset=reset_peak())
    outcome = (
        run_plain(reference, current) if contender == PLAIN else run_ours(reference, current, kinds, workdir)
    )
    outcome.update(loaded, hwm_mib=status_mib("VmHWM"))
    (workdir / f"{contender}.json").write_text(json.dumps(outcome), encoding="utf-8")


def busy_cores(seconds: float = 2.0) -> float:
    """Cores in use on the whole machine over the next ``seconds``."""
    before, started = system_busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    return (system_busy_seconds() - before) / (time.perf_counter() - started)


def wait_for_quiet(what: str, wait: float) -> float:
    """Wait (at most ``wait`` s) until the machine uses at most ``QUIET_CORES`` cores; the last reading."""
    deadline = time.perf_counter() + wait
    announced = False
    while True:
        busy = busy_cores()
        if busy <= QUIET_CORES or time.perf_counter() >= deadline:
            if busy > QUIET_CORES:
                print(f"  (still {busy:.2f} cores busy; measuring {what} anyway)", flush=True)
            return busy
        if not announced:
            print(f"  waiting for a quiet machine before {what} ({busy:.2f} cores busy) ...", flush=True)
            announced = True


def run_child(workdir: Path, *args: str) -> None:
    """This script in a fresh interpreter (this process stays small: a child's ``ru_maxrss`` starts from the
    RSS of its parent at the moment it starts)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLOPS_", "AIRFLOW", "MLFLOW_"))
    }
    result = subprocess.run(
        [sys.executable, __file__, *args, "--workdir", str(workdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")


def run_contender(contender: str, workdir: Path, quiet_wait: float) -> dict[str, Any]:
    busy = wait_for_quiet(contender, quiet_wait)
    print(f"running {TITLES[contender]} in a fresh process ...", flush=True)
    started = time.perf_counter()
    run_child(workdir, "--child", contender)
    outcome = json.loads((workdir / f"{contender}.json").read_text(encoding="utf-8"))
    outcome["process_seconds"] = time.perf_counter() - started
    outcome["busy_before"] = busy
    print(
        f"  {outcome['seconds']:.1f} s, peak {outcome['peak_mib']:.0f} MiB "
        f"(after loading the frames: {outcome['rss_loaded_mib']:.0f} MiB)",
        flush=True,
    )
    return outcome


# --- agreement ------------------------------------------------------------------------------------------------


def plain_decision(column: dict[str, Any]) -> bool:
    """Evidently's decision: its drift test's status; without one, the score against the threshold."""
    from mlops.config import P_VALUE_METHODS

    if column["status"] in ("FAIL", "SUCCESS"):
        return column["status"] == "FAIL"
    if column["method"] in P_VALUE_METHODS:
        return column["score"] < column["threshold"]
    return column["score"] >= column["threshold"]


def compare(plain: dict[str, Any], ours: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-column rows of both contenders' results, and every difference in decision, method or score."""
    rows, differences = [], []
    for spec in columns():
        name = spec.name
        theirs, mine = plain["columns"].get(name), ours["columns"].get(name)
        if theirs is None or mine is None:
            differences.append(f"{name}: missing from {'plain Evidently' if theirs is None else 'ours'}")
            continue
        theirs_drifted = plain_decision(theirs)
        gap = abs(theirs["score"] - mine["score"])
        relative = gap / max(abs(theirs["score"]), 1e-300)
        row = {
            "column": name,
            "kind": spec.kind,
            "expect": spec.expect,
            "description": spec.description,
            "plain_method": theirs["method"],
            "ours_method": mine["method"],
            "plain_threshold": theirs["threshold"],
            "ours_threshold": mine["threshold"],
            "plain_score": theirs["score"],
            "ours_score": mine["score"],
            "score_gap": gap,
            "plain_drifted": theirs_drifted,
            "ours_drifted": mine["drifted"],
            "plain_status": theirs["status"],
        }
        problems = []
        if theirs["status"] not in ("FAIL", "SUCCESS"):
            problems.append(f"plain Evidently has no drift test status ({theirs['status']})")
        if theirs_drifted != mine["drifted"]:
            problems.append(
                f"drift: plain {'yes' if theirs_drifted else 'no'}, ours {'yes' if mine['drifted'] else 'no'}"
            )
        if theirs["method"] != mine["method"]:
            problems.append(f"method: plain {theirs['method']}, ours {mine['method']}")
        if theirs["threshold"] != mine["threshold"]:
            problems.append(f"threshold: plain {theirs['threshold']}, ours {mine['threshold']}")
        if relative > SCORE_TOLERANCE:
            problems.append(f"score: plain {theirs['score']!r}, ours {mine['score']!r}")
        row["same"] = not problems
        rows.append(row)
        differences.extend(f"{name}: {problem}" for problem in problems)
    return rows, differences


# --- the report -----------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    facts = machine_facts(("evidently", "pandas", "numpy", "scipy", "pyarrow"))
    facts["Code"] = code_version()
    return facts


def code_version() -> str:
    """The commit measured, and whether the measured code had uncommitted changes."""

    commit = git(REPO, "rev-parse", "--short", "HEAD") or "unknown"
    dirty = git(
        REPO, "status", "--porcelain", "--", "plugins/mlops/drift.py", "bench/monitoring_benchmark.py"
    )
    return f"`{commit}`" + (" + uncommitted changes in `drift.py` or this script" if dirty else "")


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def mib(value: float) -> str:
    return f"{value:,.0f} MiB"


def score(value: float) -> str:
    return f"{value:.4f}"


def render(
    facts: dict[str, str],
    started: datetime,
    loads: tuple[str, str],
    frames: dict[str, Any],
    plain: dict[str, Any],
    ours: dict[str, Any],
    rows: list[dict[str, Any]],
    differences: list[str],
    quiet_wait: float,
) -> str:
    speedup = plain["seconds"] / ours["seconds"]
    memory = ours["peak_mib"] / plain["peak_mib"]
    helpers = ours["workers"] - 1

    def added(side: dict[str, Any]) -> float:
        return side["peak_mib"] - side["rss_loaded_mib"]

    def with_reading(side: dict[str, Any]) -> float:
        return max(side["peak_read_mib"], side["peak_mib"])

    def kept(side: dict[str, Any]) -> float:  # had Arrow kept its unused memory: the work starts higher
        return side["rss_read_mib"] + added(side)

    same = sum(row["same"] for row in rows)
    agreed = not differences and same == len(rows) == len(columns())
    drifted = sum(row["plain_drifted"] for row in rows)
    near = [row for row in rows if row["expect"] == "near the threshold"]
    lines = [
        f"## Monitoring at scale: drift on {frames['rows']:,} rows vs a plain Evidently report",
        "",
        f"Measured by `bench/monitoring_benchmark.py` on {started:%Y-%m-%d %H:%M} UTC, one run of each contender "
        f"on this machine. Frames: a current window of {frames['rows']:,} rows and a reference of "
        f"{frames['reference_rows']:,} rows, 20 features (14 numeric, 6 categorical: three pandas `category`, "
        f"three plain strings), drawn by a seeded generator (seed {SEED}) and saved as Parquet "
        f"({frames['parquet_mib']:.0f} MiB). Each contender runs in its own fresh Python process (started by a "
        "small parent process, which matters: a child's `ru_maxrss` starts at its parent's RSS), which imports "
        "its libraries and reads the Parquet files (`pandas.read_parquet`) before the clock starts. The "
        "contenders run one after the other; before each, the script waits (up to "
        f"{quiet_wait:.0f} s) until other processes use at most {QUIET_CORES:g} cores: "
        f"{plain['busy_before']:.2f} and {ours['busy_before']:.2f} cores were busy when they started.",
        "",
        f"**How to reproduce:** `.venv/bin/python bench/monitoring_benchmark.py` (`--rows N --reference-rows N` "
        f"for a quicker run; default {ROWS:,} and {REFERENCE_ROWS:,}; `--no-write` to leave this file alone).",
        "",
        "| Machine | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        f"| Load average (1/5/15 min) at start / end | {loads[0]} — {loads[1]} |",
        "",
        "### Time",
        "",
        "| Contender | Wall time | CPU time | Other processes meanwhile |",
        "| --- | ---: | ---: | ---: |",
        "| plain Evidently: `Report([DataDriftPreset()], include_tests=True).run(current_data=..., "
        f"reference_data=...)` | {seconds(plain['seconds'])} | {seconds(plain['cpu_seconds'])} | "
        f"{plain['other_cores']:.2f} cores |",
        f"| {TITLES[OURS]}, in all | **{seconds(ours['seconds'])}** | {seconds(ours['cpu_seconds'])} | "
        f"{ours['other_cores']:.2f} cores |",
        f"| — decisions: `compute_drift` on the full frames ({helpers} helper "
        f"thread{'s' if helpers != 1 else ''}) | {seconds(ours['drift_seconds'])} | | |",
        f"| — HTML report on {REPORT_ROWS:,} sampled rows per side: `Report.run` | "
        f"{seconds(ours['report_run_seconds'])} | | |",
        f"| — HTML report: `save_html` ({ours['html_mib']:.1f} MiB) | {seconds(ours['report_html_seconds'])} "
        "| | |",
        "",
        f"Plain Evidently's time excludes `snapshot.dict()` ({seconds(plain['dict_seconds'])}), needed to read "
        "its decisions, and it draws no HTML; ours includes its HTML report. CPU time: user + system time of the "
        "process during the timed part (above the wall time when threads ran on both cores). Other processes: "
        "the cores the rest of the machine used meanwhile, on average (from `/proc/stat`; the machine has "
        f"{os.cpu_count()}, so more than 0 means the run shared them).",
        "",
        "### Memory",
        "",
        "| Resident memory of the process | plain | ours | ours / plain |",
        "| --- | ---: | ---: | ---: |",
        f"| libraries imported | {mib(plain['rss_imported_mib'])} | {mib(ours['rss_imported_mib'])} | |",
        f"| Parquet files read | {mib(plain['rss_read_mib'])} | {mib(ours['rss_read_mib'])} | |",
        f"| peak while reading | {mib(plain['peak_read_mib'])} | {mib(ours['peak_read_mib'])} | |",
        "| **loaded**: Arrow's unused memory handed back (`pyarrow.default_memory_pool().release_unused()`) | "
        f"{mib(plain['rss_loaded_mib'])} | {mib(ours['rss_loaded_mib'])} | |",
        f"| **peak of the work**, from loaded (`ru_maxrss`) | **{mib(plain['peak_mib'])}** | "
        f"**{mib(ours['peak_mib'])}** | **{memory:.2f}×** |",
        f"| what the work added: peak − loaded | {mib(added(plain))} | {mib(added(ours))} | "
        f"{added(ours) / added(plain):.2f}× |",
        f"| — of which ours' decisions: peak when `compute_drift` returned − loaded | | "
        f"{mib(ours['drift_peak_mib'] - ours['rss_loaded_mib'])} | |",
        f"| peak of the whole process, reading included | {mib(with_reading(plain))} | "
        f"{mib(with_reading(ours))} | {with_reading(ours) / with_reading(plain):.2f}× |",
        f"| estimate had Arrow kept its unused memory: read + what the work added | {mib(kept(plain))} | "
        f"{mib(kept(ours))} | {kept(ours) / kept(plain):.2f}× |",
        "",
        "Reading the frames is the same in both processes and part of neither contender, so the goal is judged "
        "on the peak of the work: the peak count starts over (`5` written to `/proc/self/clear_refs`"
        + (
            ""
            if plain["peak_reset"] and ours["peak_reset"]
            else ", **which failed here: the peaks include the reading**"
        )
        + ") once the frames are in memory and Arrow's allocator has handed back what decoding them left "
        "behind. The peak of the work still counts the libraries and the frames; `VmHWM` agrees with "
        f"`ru_maxrss` ({mib(plain['hwm_mib'])} and {mib(ours['hwm_mib'])}). The last two rows show what "
        "that choice changes.",
        "",
        "### Goals",
        "",
        "| Goal (issue 4, *Scale*) | Measured | Result |",
        "| --- | --- | --- |",
        f"| at least {SPEEDUP_GOAL:g}× faster than the plain report | {speedup:.1f}× "
        f"({seconds(plain['seconds'])} / {seconds(ours['seconds'])}) | "
        f"**{'pass' if speedup >= SPEEDUP_GOAL else 'fail'}** |",
        f"| at most half the plain report's peak memory | {memory:.2f}× ({mib(ours['peak_mib'])} / "
        f"{mib(plain['peak_mib'])}, peaks of the work) | **{'pass' if memory <= MEMORY_GOAL else 'fail'}** |",
        f"| per-feature drift decisions identical to the plain report's | {same} of {len(columns())} columns: "
        f"same decision, method and threshold, scores within {SCORE_TOLERANCE:g} (relative) | "
        f"**{'pass' if agreed else 'fail'}** |",
        "",
        "### Agreement, column by column",
        "",
        f"Plain Evidently's decision is its drift test's status (`FAIL` = drift), its method and score are its "
        f"`ValueDrift` metric's; ours come from `compute_drift` with the kit's default tests "
        f"(`mlops.config.Drift()`: normed Wasserstein ≥ 0.1 for numeric columns, Jensen-Shannon ≥ 0.1 for "
        f"categorical ones). {drifted} of {len(rows)} columns drift; {len(near)} were generated next to the "
        f"0.1 threshold (the closest score: "
        f"{min((abs(row['plain_score'] - 0.1) for row in near), default=float('nan')):.4f} away), where any "
        f"change in cleaning or binning would flip a decision.",
        "",
        "| Column | Kind | Generated as | Expected | Method (plain / ours) | Score plain | Score ours "
        "| Drift plain / ours | Same |",
        "| --- | --- | --- | --- | --- | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        method = (
            f"`{row['plain_method']}`"
            if row["plain_method"] == row["ours_method"]
            else f"`{row['plain_method']}` / `{row['ours_method']}`"
        )
        lines.append(
            f"| `{row['column']}` | {row['kind']} | {row['description']} | {row['expect']} | {method} | "
            f"{score(row['plain_score'])} | {score(row['ours_score'])} | "
            f"{'yes' if row['plain_drifted'] else 'no'} / {'yes' if row['ours_drifted'] else 'no'} | "
            f"{'yes' if row['same'] else '**no**'} |"
        )
    lines.append("")
    if differences:
        lines += ["**Differences:**", "", *(f"- {difference}" for difference in differences), ""]
    else:
        max_gap = max((row["score_gap"] for row in rows), default=0.0)
        lines += [
            f"No difference. The largest gap between the two scores of a column is {max_gap:.1e} (string "
            "categories are summed in the order of a Python set, which changes from process to process).",
            "",
        ]
    lines += [
        "### Why ours is faster",
        "",
        f"The preset does far more than decide. In the plain run Evidently called a stat test "
        f"{plain['stat_test_calls']} times for {len(rows)} columns: each column's drift is computed three times "
        "(for `DriftedColumnsCount`, through the legacy `DatasetDriftMetric`; for the drift table the preset "
        "renders, the legacy `DataDriftTable`; and in each column's `ValueDrift`), and each time, around the "
        "test, it computes correlations of the numeric columns, histograms of both sides, distributions with "
        "Doane's bins and a binned scatter plot of the current values over the index, and builds Plotly figures "
        "from them. On a million rows, that is where the time and the memory go. Ours "
        "(`mlops.drift.compute_drift`) does, per column, only what decides, once: the same cleaning "
        "(infinities to missing, missing dropped; without a copy when the dtype shows there is nothing to "
        "drop), Evidently's own `get_stattest` and the stat test's call on the cleaned columns. Two things "
        "make that faster without changing a bit of a score: the current side of a Wasserstein test is handed "
        "over sorted (SciPy sorts both sides and their union before it sums; sorted input gives it the same "
        "arrays, and those sorts become nearly free), and "
        + (
            f"{helpers} helper thread{'s' if helpers > 1 else ''} "
            f"{'clean and sort' if helpers > 1 else 'cleans and sorts'} the next column while one is tested (NumPy sorts without the GIL; the tests themselves run "
            "one at a time, so at most one test's working memory is in use)."
            if helpers
            else "no helper thread here (one CPU available), so the columns are prepared and tested in turn."
        )
        + " The HTML report, which needs the histograms and plots, is drawn by Evidently from a "
        f"seeded sample of {REPORT_ROWS:,} rows per side with the tests already decided, while the decisions "
        "use the full window. The decisions are Evidently's by construction, and this run checks it.",
        "",
        "Scope: this is the data-drift part of a monitoring run (decisions and report). A run also checks "
        "prediction drift (one more column, the same way), the data-quality expectations and, with labels, live "
        "performance, and logs to MLflow; those are not part of the comparison, which is with a plain "
        "`DataDriftPreset` only.",
    ]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=ROWS, help=f"rows of the current window (default {ROWS:,})"
    )
    parser.add_argument(
        "--reference-rows",
        type=int,
        default=REFERENCE_ROWS,
        help=f"rows of the reference (default {REFERENCE_ROWS:,})",
    )
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT,
        help=f"seconds to wait at most, before each contender, for a quiet machine (default {QUIET_WAIT:.0f})",
    )
    parser.add_argument("--child", choices=[PLAIN, OURS], help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.workdir)
        return 0
    if args.generate:
        write_frames(args.rows, args.reference_rows, args.workdir)
        return 0

    started = datetime.now(UTC)
    start_load = load_average()
    facts = machine()
    with tempfile.TemporaryDirectory(prefix="mlops-monitoring-bench-") as folder:
        workdir = Path(folder)
        print(f"generating {args.rows:,} + {args.reference_rows:,} rows ...", flush=True)
        run_child(
            workdir, "--generate", "--rows", str(args.rows), "--reference-rows", str(args.reference_rows)
        )
        frames = {
            "rows": args.rows,
            "reference_rows": args.reference_rows,
            "parquet_mib": sum(
                (workdir / f"{side}.parquet").stat().st_size for side in ("reference", "current")
            )
            / 2**20,
        }
        plain = run_contender(PLAIN, workdir, args.quiet_wait)
        ours = run_contender(OURS, workdir, args.quiet_wait)
    rows, differences = compare(plain, ours)
    body = render(
        facts, started, (start_load, load_average()), frames, plain, ours, rows, differences, args.quiet_wait
    )
    print()
    print(f"plain: {seconds(plain['seconds'])}, peak {mib(plain['peak_mib'])}")
    print(
        f"ours:  {seconds(ours['seconds'])} (decisions {seconds(ours['drift_seconds'])}, report "
        f"{seconds(ours['report_seconds'])}), peak {mib(ours['peak_mib'])}"
    )
    print(
        f"speedup {plain['seconds'] / ours['seconds']:.1f}x (goal >= {SPEEDUP_GOAL:g}x), "
        f"peak memory {ours['peak_mib'] / plain['peak_mib']:.2f}x (goal <= {MEMORY_GOAL:g}x)"
    )
    for row in rows:
        print(
            f"  {row['column']:>4} {row['plain_method']:>13} plain {row['plain_score']:.6f} "
            f"{'drift' if row['plain_drifted'] else 'ok   '}  ours {row['ours_score']:.6f} "
            f"{'drift' if row['ours_drifted'] else 'ok   '}  {'same' if row['same'] else 'DIFFERENT'}"
        )
    if not args.no_write:
        write_section(DOC, SECTION, body)
        print(f"section '{SECTION}' of {DOC.relative_to(REPO)} rewritten")
    if differences:
        print("\nDECISIONS DIFFER from plain Evidently:", file=sys.stderr)
        for difference in differences:
            print(f"  {difference}", file=sys.stderr)
        return 1
    print(f"agreement: all {len(rows)} columns have the same decision and method")
    return 0


if __name__ == "__main__":
    sys.exit(main())
