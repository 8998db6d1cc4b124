"""Our model server against ``mlflow models serve``: same machine, same model version, same load, one run.

    .venv/bin/python bench/serving_benchmark.py [--duration S] [--warmup S] [--profile | --no-profile]

1. In a temporary ``MLOPS_HOME``: one generated ``breast_cancer`` batch is ingested, validated, trained on
   (StandardScaler + LogisticRegression), registered and promoted to ``champion`` with the kit's own functions.
2. The floor: raw in-process ``model.predict`` of that version (``mlflow.sklearn.load_model``), 1 and 100 rows.
3. Our server (``mlops serve breast_cancer``), the same with ``serving.inference_log.journal: false`` (batch 1
   only: what the crash-safe journal costs), then the MLflow scoring server (``mlflow models serve -m
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
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchlib.machine import load_average
from benchlib.repo import BENCHMARKS_MD, BIN_DIR
from benchlib.sections import write_section
from benchlib.tables import us
from benchlib.timing import CpuClock
from serving_bench import (
    BATCH_SIZES,
    JOURNAL_SHAPES,
    MLFLOW,
    OURS,
    OURS_NO_JOURNAL,
    PIPELINE,
    READY_TIMEOUT,
    SECTION,
    SERVER_TITLES,
)
from serving_bench.diagnostics import Profile, diagnose
from serving_bench.in_process import WHOLE, asgi_timings
from serving_bench.model import (
    measure_floor,
    raw_predictions,
    request_steps,
    set_environment,
    train_and_promote,
)
from serving_bench.report import judge, machine, render
from serving_bench.servers import check_answer, mlflow_server, our_server, without_journal
from serving_bench.wrk import Cell, Quiet, cores, measure_server, wait_for_quiet


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and rewrite section ``serving``; 2 when wrk is missing."""
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
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD, help="Markdown to update")
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

        print("1/6 training and promoting one breast_cancer model ...", flush=True)
        trained = train_and_promote(home)
        print(f"    v{trained.version} is the champion ({trained.seconds:.1f} s)", flush=True)

        print("2/6 the floor: raw in-process predict ...", flush=True)
        import mlflow.sklearn

        model = mlflow.sklearn.load_model(f"models:/{PIPELINE}@champion")
        expected = {rows: raw_predictions(model, trained, rows) for rows in BATCH_SIZES}
        for _attempt in range(1 + quiet.retries):
            wait_for_quiet(quiet, "the floor")
            with CpuClock() as clock:
                floor = measure_floor(model, trained, args.floor_calls)
                steps = request_steps(trained, args.floor_calls)
                in_process = asgi_timings(trained, args.floor_calls)
            floor.other_cores = cores(clock)["other"]
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

        bodies[OURS_NO_JOURNAL] = bodies[OURS]
        envs = {name: env for name in (OURS, MLFLOW)}
        envs[OURS_NO_JOURNAL] = {**env, "MLOPS_PIPELINES_DIR": str(without_journal(work))}
        servers = [our_server(), our_server(OURS_NO_JOURNAL), mlflow_server()]
        cells: list[Cell] = []
        for number, server in enumerate(servers, start=3):
            print(f"{number}/6 {SERVER_TITLES[server.name]} ...", flush=True)
            server.start(envs[server.name], work / f"{server.name}.log", READY_TIMEOUT)
            try:
                print(f"    ready in {server.ready_seconds:.1f} s on port {server.port}", flush=True)
                server.check = check_answer(server, trained, expected)
                shapes = JOURNAL_SHAPES if server.name == OURS_NO_JOURNAL else None
                cells += measure_server(
                    server, wrk, bodies[server.name], args.duration, args.warmup, quiet, shapes
                )
                server.rss_mib = server.resident_mib()
            finally:
                server.stop()

        goals, shapes = judge(cells, floor)
        for goal in goals:
            print(f"    {'PASS' if goal.passed else 'FAIL'}  {goal.title}: {goal.measured}")
        profiles: list[Profile] = []
        diagnostics: list[Cell] = []
        if args.profile:
            shapes = [(1, 32), (100, 1), (1, 1)]
        if shapes and not args.no_profile:
            print(f"6/6 where our server's time goes, for {shapes} (batch, concurrency) ...", flush=True)
            diagnostics, profiles = diagnose(
                env, wrk, bodies[OURS], shapes, args.duration, args.warmup, quiet, work
            )
        else:
            print("6/6 no profile (every goal met, or --no-profile)", flush=True)
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
