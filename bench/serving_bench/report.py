"""The goals, judged, and the Markdown of section ``serving`` of ``docs/benchmarks.md``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from benchlib.machine import machine_facts
from benchlib.repo import BIN_DIR, commit, dirty_paths
from benchlib.tables import machine_table, ms3, us, verdict

from serving_bench import (
    BATCH_SIZES,
    JOURNAL_COST_GOAL,
    LOADS,
    MLFLOW,
    OURS,
    OURS_NO_JOURNAL,
    P50_GOAL_MS,
    P99_GOAL,
    PER_ROW_GOAL,
    PIPELINE,
    SERVER_TITLES,
    SPEEDUP_GOAL,
    WRK_TIMEOUT,
)
from serving_bench.diagnostics import Profile, short_thread
from serving_bench.in_process import APP_PARTS, REST, WHOLE
from serving_bench.model import Floor, Trained
from serving_bench.servers import VARIANTS, Server
from serving_bench.wrk import Cell, Quiet


def machine(wrk: str) -> dict[str, str]:
    """The machine table's facts: the machine, the serving stack's versions, wrk's, the code measured."""
    facts = machine_facts(("mlflow", "uvicorn", "fastapi", "starlette", "scikit-learn", "numpy", "pandas"))
    version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.splitlines()
    facts["wrk"] = version[0].split(" Copyright")[0] if version else "unknown"
    facts["Code"] = code_version()
    facts["`OPENBLAS_CORETYPE`"] = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    return facts


def code_version() -> str:
    """The commit measured, and whether the serving code had uncommitted changes."""
    dirty = dirty_paths(("plugins/mlops/serving", "plugins/mlops/tooling/cli.py"))
    return f"`{commit()}`" + (" + uncommitted changes in `plugins/mlops/serving`" if dirty else "")


@dataclass
class Goal:
    """One goal, what was measured for it, and whether it was met."""

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
            f"{ms3(ours.p99)} vs {ms3(peer.p99)}: 1/{ratio:.1f}",
            ratio >= P99_GOAL,
        )
    )
    if speedup < SPEEDUP_GOAL or ratio < P99_GOAL:
        shapes.append((1, 32))
    unsafe = at.get((OURS_NO_JOURNAL, 1, 32))
    if unsafe is not None:
        cost = 1 - ours.requests_per_second / unsafe.requests_per_second
        goals.append(
            Goal(
                f"batch 1, concurrency 32: the crash-safe journal costs ≤ {JOURNAL_COST_GOAL:.0%} of requests/s",
                f"{ours.requests_per_second:.0f} with vs {unsafe.requests_per_second:.0f} req/s without "
                f"(p99 {ms3(ours.p99)} vs {ms3(unsafe.p99)}): {cost:+.1%}",
                cost <= JOURNAL_COST_GOAL,
            )
        )

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
                ms3(cell.p50),
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
    """The Markdown of section ``serving``."""
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
        "process). Ours runs a second time with `serving.inference_log.journal: false`, on the batch-1 loads "
        "only, to show what the crash-safe journal (on by default) costs. The load generator is `wrk` on the same machine: concurrency 1 is `-t1 -c1`, concurrency "
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
    add(machine_table(facts, loads) + "\n")

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
            for name in (OURS, OURS_NO_JOURNAL, MLFLOW):
                cell = at.get((name, batch, concurrency))
                if cell is None:
                    continue
                errors = f"{cell.errors}" + (f" ({cell.error_detail()})" if cell.errors else "")
                per_call = cell.rows_per_predict
                add(
                    f"| {SERVER_TITLES[name]} | {batch} | {concurrency} | {cell.requests_per_second:,.0f} | "
                    f"{cell.rows_per_second:,.0f} | {ms3(cell.p50)} | {ms3(cell.p99)} | {errors} | "
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
        add(f"| {goal.title} | {goal.measured} | {verdict(goal.passed)} |")
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
                f"{ms3(cell.p50)} | {ms3(cell.p99)} | {per_call} | {int(gc_full[0])}, {ms3(gc_full[2])} | "
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
    """One paragraph, written from the numbers so that it stays true when the script is re-run."""
    at = {(c.server, c.batch, c.concurrency): c for c in cells}
    met = [g for g in goals if g.passed]
    text = f"{len(met)} of {len(goals)} goals met."
    missed = [g.title for g in goals if not g.passed]
    if missed:
        text += " Missed: " + "; ".join(missed) + "."
    ours1, peer1 = at[(OURS, 1, 1)], at[(MLFLOW, 1, 1)]
    ours32, peer32 = at[(OURS, 1, 32)], at[(MLFLOW, 1, 32)]
    text += (
        f" One row at a time, ours answers in {ms3(ours1.p50)} (p50) against MLflow's {ms3(peer1.p50)}; "
        f"under 32 concurrent one-row requests ours serves {ours32.requests_per_second:,.0f} requests/s "
        f"({ours32.requests_per_second / peer32.requests_per_second:.1f}× MLflow's "
        f"{peer32.requests_per_second:,.0f}), p99 {ms3(ours32.p99)} vs {ms3(peer32.p99)}."
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
            f" At 100 rows, decoding the JSON body and `predict` alone already take {ms3(floor_100)} together "
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
            parts.append(f"{int(full[0])} full garbage collections paused it for up to {ms3(full[2])} each")
        if (no_log := by_variant.get(("no_log", batch, concurrency))) is not None:
            parts.append(
                f"without the inference log it served {no_log.requests_per_second:,.0f} requests/s instead of "
                f"{served.requests_per_second:,.0f} (p50 {ms3(no_log.p50)} vs {ms3(served.p50)}, p99 "
                f"{ms3(no_log.p99)} vs {ms3(served.p99)})"
            )
        if (frozen := by_variant.get(("freeze", batch, concurrency))) is not None:
            parts.append(
                f"with `gc.freeze()` once ready, {frozen.requests_per_second:,.0f} requests/s, p99 "
                f"{ms3(frozen.p99)}"
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
