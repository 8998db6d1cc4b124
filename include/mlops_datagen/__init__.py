"""Seeded data generators for the example pipelines, and ways to break their batches.

Three data sets, one per example config in ``include/pipelines/``:

``breast_cancer``
    the real Wisconsin breast cancer data (ships with scikit-learn), split into dated batches.
``fraud_detection``
    synthetic card transactions, about 2.5 % fraud.
``demand_forecast``
    synthetic daily units sold per store and product category.

Every batch is a file named by its date, one day apart, and depends on the seed and its date: the same seed
and date give the same bytes, another seed or another date another batch (``--start-date 2026-01-02`` makes
new data, not yesterday's batch renamed). Drift (a shift of the features, or a change of the relation
between features and target) can start at any batch, and ``corrupt_batch`` breaks a batch in one of the ways
listed in ``CORRUPTIONS``.

Example:
    >>> from mlops_datagen import generate_batches
    >>> paths = generate_batches("fraud_detection", "/tmp/landing/fraud_detection", batches=2, rows=500)
    >>> [p.name for p in paths]
    ['2026-01-01.csv', '2026-01-02.csv']
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from mlops_datagen import breast_cancer, demand, fraud
from mlops_datagen.corruption import CORRUPTIONS, corrupt_batch

__all__ = [
    "CORRUPTIONS",
    "PIPELINES",
    "TARGETS",
    "corrupt_batch",
    "generate_batches",
    "generate_frames",
]

_GENERATORS: dict[str, Callable[..., list[pd.DataFrame]]] = {
    "breast_cancer": breast_cancer.make_batches,
    "fraud_detection": fraud.make_batches,
    "demand_forecast": demand.make_batches,
}
#: Names of the pipelines with a generator.
PIPELINES: tuple[str, ...] = tuple(_GENERATORS)
#: Target column of each pipeline's data.
TARGETS: dict[str, str] = {
    "breast_cancer": breast_cancer.TARGET,
    "fraud_detection": fraud.TARGET,
    "demand_forecast": demand.TARGET,
}
_FORMATS = ("csv", "parquet")


def generate_frames(
    pipeline: str,
    *,
    batches: int = 3,
    rows: int | None = None,
    start_date: str = "2026-01-01",
    seed: int = 7,
    feature_drift: float = 0.0,
    concept_drift: float = 0.0,
    drift_from: int = 0,
) -> list[tuple[str, pd.DataFrame]]:
    """Make the batches in memory: ``(YYYY-MM-DD, frame)`` pairs, one day apart.

    Takes the arguments of ``generate_batches`` but ``out_dir`` and ``fmt``.

    Returns:
        One ``(date, frame)`` pair per batch.

    Raises:
        ValueError: If the pipeline is unknown or a number is out of range.
    """
    if pipeline not in _GENERATORS:
        raise ValueError(f"unknown pipeline '{pipeline}'; choose one of: {', '.join(PIPELINES)}")
    if batches < 1:
        raise ValueError(f"batches must be at least 1 (got {batches})")
    if rows is not None and rows < 1:
        raise ValueError(f"rows must be at least 1 or None for the default (got {rows})")
    if seed < 0:
        raise ValueError(f"seed must be zero or positive (got {seed})")
    if drift_from < 0:
        raise ValueError(f"drift_from must be zero or positive (got {drift_from})")
    try:
        first = date.fromisoformat(start_date)
    except ValueError:
        raise ValueError(f"start_date '{start_date}' is not a date like 2026-01-01") from None
    dates = [first + timedelta(days=i) for i in range(batches)]
    frames = _GENERATORS[pipeline](
        dates,
        rows=rows,
        seed=seed,
        feature_drift=feature_drift,
        concept_drift=concept_drift,
        drift_from=drift_from,
    )
    return [(day.isoformat(), frame) for day, frame in zip(dates, frames, strict=True)]


def generate_batches(
    pipeline: str,
    out_dir: str | Path,
    *,
    batches: int = 3,
    rows: int | None = None,
    start_date: str = "2026-01-01",
    seed: int = 7,
    feature_drift: float = 0.0,
    concept_drift: float = 0.0,
    drift_from: int = 0,
    fmt: str = "csv",
) -> list[Path]:
    """Write dated batches ``<out_dir>/<YYYY-MM-DD>.csv`` (or ``.parquet``), one day apart.

    The same arguments always write the same files.

    Args:
        pipeline: One of ``PIPELINES``: ``breast_cancer``, ``fraud_detection``, ``demand_forecast``.
        out_dir: Folder to write to (created if missing).
        batches: Number of batches (days).
        rows: Rows per batch; ``None`` for the generator's default (breast_cancer: the 569 rows split into
            equal parts; fraud_detection: 4000; demand_forecast: 3000).
        start_date: Date of the first batch, ``YYYY-MM-DD``; each batch's data depends on its date.
        seed: Seed of every random choice, with each batch's date.
        feature_drift: Size of the shift of the feature distributions (0: none; 0.5 is clearly visible).
        concept_drift: Size of the change of the relation between features and target, in [0, 1].
        drift_from: Index (0-based) of the first batch that gets the drift.
        fmt: ``csv`` or ``parquet``.

    Returns:
        The written paths, in date order.

    Raises:
        ValueError: If the pipeline or format is unknown or a number is out of range.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"unknown format '{fmt}'; choose one of: {', '.join(_FORMATS)}")
    frames = generate_frames(
        pipeline,
        batches=batches,
        rows=rows,
        start_date=start_date,
        seed=seed,
        feature_drift=feature_drift,
        concept_drift=concept_drift,
        drift_from=drift_from,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for day, frame in frames:
        path = out / f"{day}.{fmt}"
        # Write then rename, so that a sensor watching the folder never sees half a file.
        partial = out / f".{day}.{fmt}.partial"
        if fmt == "parquet":
            frame.to_parquet(partial, index=False)
        else:
            frame.to_csv(partial, index=False)
        partial.replace(path)
        paths.append(path)
    return paths
