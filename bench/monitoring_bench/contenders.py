"""The contenders, each run in its own fresh process of ``bench/monitoring_benchmark.py``.

The process imports its libraries and reads the Parquet files before the clock starts, then hands back to the
system the memory Arrow's allocator kept from decoding them, and starts the peak-RSS count over. Time is the
wall time of the work alone; memory is the process's peak RSS, next to its RSS once the frames were loaded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchlib.machine import wait_for_quiet
from benchlib.processes import hwm_mib, peak_mib, reset_peak, rss_mib, run_python
from benchlib.repo import clean_environ
from benchlib.timing import CpuClock, CpuUse

from monitoring_bench import PLAIN, QUIET_CORES, REPORT_ROWS, SEED, TITLES

#: The script whose ``--child`` and ``--generate`` modes the fresh processes run.
SCRIPT = Path(__file__).resolve().parent.parent / "monitoring_benchmark.py"


def times(use: CpuUse) -> dict[str, float]:
    """Wall time, this process's CPU time and the cores the other processes used meanwhile."""
    return {"seconds": use.wall, "cpu_seconds": use.own, "other_cores": use.cores(use.others)}


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
    clock = CpuClock()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=current, reference_data=reference
    )
    timing = times(clock.stop())
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

    from mlops.config import Drift
    from mlops.ml import drift

    config = Drift()
    tests = {
        name: config.numeric if kind == "numeric" else config.categorical for name, kind in kinds.items()
    }
    clock = CpuClock()
    result = drift.compute_drift(reference, current, kinds, tests, share_threshold=config.share)
    drift_seconds = time.perf_counter() - clock.started
    drift_peak = peak_mib()
    # The report as mlops.monitoring.report.write_report draws it: a seeded sample per side, the decided tests.
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
    timing = times(clock.stop())
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

        import mlops.ml.drift  # noqa: F401
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
    outcome.update(loaded, hwm_mib=hwm_mib())
    (workdir / f"{contender}.json").write_text(json.dumps(outcome), encoding="utf-8")


def run_child(workdir: Path, *args: str) -> None:
    """The script in a fresh interpreter (this process stays small: a child's ``ru_maxrss`` starts from the
    RSS of its parent at the moment it starts)."""
    run_python(str(SCRIPT), *args, "--workdir", str(workdir), env=clean_environ(), what=" ".join(args))


def run_contender(contender: str, workdir: Path, quiet_wait: float) -> dict[str, Any]:
    """One contender in a fresh process once the machine is quiet: what it measured, with the process's time."""
    busy = wait_for_quiet(contender, QUIET_CORES, quiet_wait)
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
