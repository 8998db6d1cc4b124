"""Batches that depend only on the seed and their date: the same ``seed`` gives the same batch for a date
however many batches are made and whichever date they start on; another seed or another date, another
batch. Drift starts at batch ``drift_from`` (an index into the batches made)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd

#: Day 0 of the batches' calendar, the default first date: the batch of ``EPOCH + i`` days is the ``i``-th
#: batch of the default calendar (the same bytes as when batches were keyed by their index).
EPOCH = date(2026, 1, 1)

#: ``make_batch(rows, [batch_date,] rng=..., feature_drift=..., concept_drift=...)``: one batch.
MakeBatch = Callable[..., pd.DataFrame]
#: ``make_batches(dates, *, rows, seed, feature_drift, concept_drift, drift_from)``: one frame per date.
MakeBatches = Callable[..., list[pd.DataFrame]]


def day_entropy(seed: int, day: date) -> list[int]:
    """The entropy of ``np.random.default_rng`` for the batch of ``day``: ``[seed, days since EPOCH]``, or
    ``[seed, days before EPOCH, 1]`` for earlier dates (seed sequences take no negative numbers)."""
    offset = (day - EPOCH).days
    return [seed, offset] if offset >= 0 else [seed, -offset, 1]


def seeded_generator(make_batch: MakeBatch, default_rows: int, *, dated: bool) -> MakeBatches:
    """A ``make_batches`` over ``make_batch``: the batch of a date gets ``np.random.default_rng`` of
    :func:`day_entropy` (and its date when ``dated``), and the drift from batch ``drift_from`` on."""

    def make_batches(
        dates: list[date],
        *,
        rows: int | None = None,
        seed: int = 7,
        feature_drift: float = 0.0,
        concept_drift: float = 0.0,
        drift_from: int = 0,
    ) -> list[pd.DataFrame]:
        count = default_rows if rows is None else rows
        return [
            make_batch(
                count,
                *((batch_date,) if dated else ()),
                rng=np.random.default_rng(day_entropy(seed, batch_date)),
                feature_drift=feature_drift if index >= drift_from else 0.0,
                concept_drift=concept_drift if index >= drift_from else 0.0,
            )
            for index, batch_date in enumerate(dates)
        ]

    return make_batches
