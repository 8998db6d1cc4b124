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
   - ours, what a monitoring run does for data drift: ``mlops.ml.drift.compute_drift`` on the full frames with the
     kit's default tests (``mlops.config.Drift()``), then the HTML report the way ``mlops.monitoring.report.write_report``
     draws it (``DataDriftPreset`` with the decided method and threshold per column, ``DataSummaryPreset``,
     ``save_html``) on a seeded sample of 20,000 rows per side.
3. Every column's decision (drift yes/no) and method must be the same in both; scores are compared too.
   Any difference is printed and recorded, and the script exits with status 1.
4. Section ``monitoring`` of ``docs/benchmarks.md`` is rewritten (unless ``--no-write``); the rest is kept.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchlib.machine import load_average
from benchlib.repo import BENCHMARKS_MD, REPO
from benchlib.sections import write_section
from benchlib.tables import mib, secs
from monitoring_bench import (
    MEMORY_GOAL,
    OURS,
    PLAIN,
    QUIET_WAIT,
    REFERENCE_ROWS,
    ROWS,
    SECTION,
    SPEEDUP_GOAL,
)
from monitoring_bench.agreement import compare
from monitoring_bench.contenders import child, run_child, run_contender
from monitoring_bench.frames import write_frames
from monitoring_bench.report import machine, render


def main(argv: list[str] | None = None) -> int:
    """Run both contenders and compare them; 1 when a decision differs. ``--child``/``--generate``: a fresh
    process's part of the run."""
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
    print(f"plain: {secs(plain['seconds'])}, peak {mib(plain['peak_mib'])}")
    print(
        f"ours:  {secs(ours['seconds'])} (decisions {secs(ours['drift_seconds'])}, report "
        f"{secs(ours['report_seconds'])}), peak {mib(ours['peak_mib'])}"
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
        write_section(BENCHMARKS_MD, SECTION, body)
        print(f"section '{SECTION}' of {BENCHMARKS_MD.relative_to(REPO)} rewritten")
    if differences:
        print("\nDECISIONS DIFFER from plain Evidently:", file=sys.stderr)
        for difference in differences:
            print(f"  {difference}", file=sys.stderr)
        return 1
    print(f"agreement: all {len(rows)} columns have the same decision and method")
    return 0


if __name__ == "__main__":
    sys.exit(main())
