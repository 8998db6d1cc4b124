"""Command line: write dated batches for an example pipeline and print their paths.

Examples::

    python -m mlops_datagen fraud_detection --out .mlops/landing/fraud_detection --batches 5
    python -m mlops_datagen demand_forecast --out /tmp/demand --feature-drift 0.8 --drift-from 3
    python -m mlops_datagen breast_cancer --out /tmp/bc --corrupt nulls --corrupt-batch 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlops_datagen import CORRUPTIONS, PIPELINES, corrupt_batch, generate_batches


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_datagen",
        description="Write seeded, dated data batches (<out>/<YYYY-MM-DD>.csv) for an example pipeline.",
    )
    parser.add_argument("pipeline", choices=PIPELINES)
    parser.add_argument("--out", required=True, help="folder to write the batches to (created if missing)")
    parser.add_argument("--batches", type=int, default=3, help="number of batches, one day apart (default 3)")
    parser.add_argument(
        "--rows", type=int, default=None, help="rows per batch (default: the generator's own default)"
    )
    parser.add_argument(
        "--start-date",
        default="2026-01-01",
        help="date of the first batch (YYYY-MM-DD; default 2026-01-01): each date has its own data",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="seed of the data (default 7): same seed and date, same bytes"
    )
    parser.add_argument("--feature-drift", type=float, default=0.0, metavar="SIZE", help="shift the features")
    parser.add_argument(
        "--concept-drift", type=float, default=0.0, metavar="SIZE", help="change the target rule (0 to 1)"
    )
    parser.add_argument(
        "--drift-from", type=int, default=0, metavar="K", help="first drifted batch (0-based)"
    )
    parser.add_argument("--format", dest="fmt", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--corrupt", choices=CORRUPTIONS, help="break one batch in this way")
    parser.add_argument(
        "--corrupt-batch",
        type=int,
        default=-1,
        metavar="K",
        help="batch to break (0-based; default the last)",
    )
    parser.add_argument("--corrupt-column", default=None, help="column to break (default: the first float)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.corrupt and not -args.batches <= args.corrupt_batch < args.batches:
        parser.error(f"--corrupt-batch {args.corrupt_batch}: there are {args.batches} batches")
    try:
        paths = generate_batches(
            args.pipeline,
            args.out,
            batches=args.batches,
            rows=args.rows,
            start_date=args.start_date,
            seed=args.seed,
            feature_drift=args.feature_drift,
            concept_drift=args.concept_drift,
            drift_from=args.drift_from,
            fmt=args.fmt,
        )
        if args.corrupt:
            target = paths[args.corrupt_batch]
            corrupt_batch(target, target, args.corrupt, column=args.corrupt_column, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Only paths on stdout, so that scripts can read them; the note on the broken batch goes to stderr.
    for path in paths:
        print(path)
    if args.corrupt:
        print(f"corrupted ({args.corrupt}): {paths[args.corrupt_batch]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
