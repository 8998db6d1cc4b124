"""Batches of the real Wisconsin breast cancer data set (569 rows, 30 numeric features).

The data ships with scikit-learn (``sklearn.datasets.load_breast_cancer``): nothing is downloaded. Columns are
renamed to snake_case (``"mean radius"`` -> ``mean_radius``). The target is ``diagnosis`` with **1 =
malignant, 0 = benign**: scikit-learn codes malignant as 0, which we flip so that the positive class, the one
recall and precision are about, is the one a screening model must find.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from mlops_datagen.seeding import EPOCH, day_entropy

TARGET = "diagnosis"
#: ``None``: split the 569 rows into equal parts, one per batch.
DEFAULT_ROWS: int | None = None

#: Features that feature drift shifts and scales (a recalibrated imaging device measuring larger cells).
DRIFTED_FEATURES = (
    "mean_radius",
    "mean_texture",
    "mean_perimeter",
    "mean_area",
    "worst_radius",
    "worst_area",
)
#: Concept drift flips labels only in this region of feature space: above the median of this feature.
CONCEPT_REGION_FEATURE = "mean_texture"


def load_frame() -> pd.DataFrame:
    """The whole data set with snake_case columns and ``diagnosis`` (1 = malignant, 0 = benign) last."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda name: name.strip().replace(" ", "_"))
    frame[TARGET] = (1 - frame.pop("target")).astype("int64")
    return frame


def _stream(n_available: int, seed: int, start: int, count: int) -> np.ndarray:
    """Row positions ``start .. start + count - 1`` of the seed's endless stream of rows: the data shuffled,
    and reshuffled each time it runs out. Negative positions read a second stream backwards (dates before
    ``EPOCH``). Only the passes that hold the positions are kept."""
    positions = np.arange(start, start + count)
    rows = np.empty(count, dtype=np.int64)
    for mask, entropy, index in (
        (positions >= 0, [seed, 0], positions),
        (positions < 0, [seed, 0, 1], -positions - 1),
    ):
        if not mask.any():
            continue
        wanted = index[mask]
        first, last = int(wanted.min()) // n_available, int(wanted.max()) // n_available
        rng = np.random.default_rng(entropy)
        passes = [rng.permutation(n_available) for _ in range(last + 1)][first:]
        rows[mask] = np.concatenate(passes)[wanted - first * n_available]
    return rows


def _feature_drift(batch: pd.DataFrame, size: float, reference: pd.DataFrame) -> pd.DataFrame:
    """Scale by ``1 + size/4`` and shift by ``size/2`` standard deviations of the full data set.

    Size 1 moves the mean of ``mean_radius`` by about 1.5 standard deviations; up to size 2 the values stay
    within the ranges of ``include/pipelines/breast_cancer.yaml``, so the batch passes validation and it is
    the drift report that must notice.
    """
    for column in DRIFTED_FEATURES:
        batch[column] = batch[column] * (1.0 + size / 4.0) + size / 2.0 * reference[column].std()
    return batch


def _concept_drift(
    batch: pd.DataFrame, size: float, threshold: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Flip each label in the region (``mean_texture`` above the median) with probability ``size``."""
    in_region = batch[CONCEPT_REGION_FEATURE].to_numpy() > threshold
    flip = in_region & (rng.random(len(batch)) < min(max(size, 0.0), 1.0))
    batch.loc[flip, TARGET] = 1 - batch.loc[flip, TARGET]
    return batch


def make_batches(
    dates: list[date],
    *,
    rows: int | None = None,
    seed: int = 7,
    feature_drift: float = 0.0,
    concept_drift: float = 0.0,
    drift_from: int = 0,
) -> list[pd.DataFrame]:
    """One frame per date, from the seed's shuffled stream of the data set's rows (``_stream``).

    Args:
        dates: One date per batch, one day apart.
        rows: Rows per batch: the batch of a date is the same whatever the first date and however many
            batches are made; rows repeat once the stream has gone through the data set, reshuffled.
            ``None`` splits one pass through the 569 rows into equal parts (no row twice), the pass of the
            first date: another first date, another shuffle.
        seed: Seed of the shuffle and of the concept-drift label flips.
        feature_drift: Size of the shift and scale applied to ``DRIFTED_FEATURES``; 0 for none.
        concept_drift: Share of labels flipped in the region ``mean_texture`` > median, in [0, 1].
        drift_from: Index of the first batch that gets the drift.

    Returns:
        One frame per date: 30 numeric features and ``diagnosis``.
    """
    frame = load_frame()
    n_batches = len(dates)
    first_day = (dates[0] - EPOCH).days if dates else 0
    if rows is None:
        order = _stream(len(frame), seed, first_day * len(frame), len(frame))
        parts = np.array_split(order, n_batches)
    else:
        parts = [_stream(len(frame), seed, (first_day + i) * rows, rows) for i in range(n_batches)]
    region_threshold = float(frame[CONCEPT_REGION_FEATURE].median())
    batches = []
    for index, (day, part) in enumerate(zip(dates, parts, strict=True)):
        batch = frame.iloc[part].reset_index(drop=True)
        if index >= drift_from and feature_drift:
            batch = _feature_drift(batch, feature_drift, frame)
        if index >= drift_from and concept_drift:
            # The region is decided before feature drift would move it: use the undrifted values.
            undrifted = frame.iloc[part].reset_index(drop=True)
            rng = np.random.default_rng([*day_entropy(seed, day), 2])
            flipped = _concept_drift(undrifted.copy(), concept_drift, region_threshold, rng)
            batch[TARGET] = flipped[TARGET].to_numpy()
        batches.append(batch)
    return batches
