"""The Markdown of section ``monitoring`` of ``docs/benchmarks.md``."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from benchlib.machine import machine_facts
from benchlib.repo import commit, dirty_paths
from benchlib.tables import machine_table, mib, secs

from monitoring_bench import (
    MEMORY_GOAL,
    OURS,
    QUIET_CORES,
    REFERENCE_ROWS,
    REPORT_ROWS,
    ROWS,
    SCORE_TOLERANCE,
    SEED,
    SPEEDUP_GOAL,
    TITLES,
)
from monitoring_bench.frames import columns


def machine() -> dict[str, str]:
    """The machine table's facts: the machine, the versions of the libraries compared, the code measured."""
    facts = machine_facts(("evidently", "pandas", "numpy", "scipy", "pyarrow"))
    facts["Code"] = code_version()
    return facts


def code_version() -> str:
    """The commit measured, and whether the measured code had uncommitted changes."""
    dirty = dirty_paths(
        ("plugins/mlops/ml/drift.py", "bench/monitoring_benchmark.py", "bench/monitoring_bench")
    )
    return f"`{commit()}`" + (" + uncommitted changes in `drift.py` or this script" if dirty else "")


def score(value: float) -> str:
    """A drift score with four decimals."""
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
    """The Markdown of section ``monitoring``."""
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
        machine_table(facts, loads),
        "",
        "### Time",
        "",
        "| Contender | Wall time | CPU time | Other processes meanwhile |",
        "| --- | ---: | ---: | ---: |",
        "| plain Evidently: `Report([DataDriftPreset()], include_tests=True).run(current_data=..., "
        f"reference_data=...)` | {secs(plain['seconds'])} | {secs(plain['cpu_seconds'])} | "
        f"{plain['other_cores']:.2f} cores |",
        f"| {TITLES[OURS]}, in all | **{secs(ours['seconds'])}** | {secs(ours['cpu_seconds'])} | "
        f"{ours['other_cores']:.2f} cores |",
        f"| — decisions: `compute_drift` on the full frames ({helpers} helper "
        f"thread{'s' if helpers != 1 else ''}) | {secs(ours['drift_seconds'])} | | |",
        f"| — HTML report on {REPORT_ROWS:,} sampled rows per side: `Report.run` | "
        f"{secs(ours['report_run_seconds'])} | | |",
        f"| — HTML report: `save_html` ({ours['html_mib']:.1f} MiB) | {secs(ours['report_html_seconds'])} "
        "| | |",
        "",
        f"Plain Evidently's time excludes `snapshot.dict()` ({secs(plain['dict_seconds'])}), needed to read "
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
        f"({secs(plain['seconds'])} / {secs(ours['seconds'])}) | "
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
        "(`mlops.ml.drift.compute_drift`) does, per column, only what decides, once: the same cleaning "
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
