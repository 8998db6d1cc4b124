"""Batches that depend only on the seed and their index: the same ``seed`` gives the same batch ``i`` however many
batches are made, and drift starts at batch ``drift_from``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd

#: ``make_batch(rows, [batch_date,] rng=..., feature_drift=..., concept_drift=...)``: one batch.
MakeBatch = Callable[..., pd.DataFrame]
#: ``make_batches(dates, *, rows, seed, feature_drift, concept_drift, drift_from)``: one frame per date.
MakeBatches = Callable[..., list[pd.DataFrame]]


def seeded_generator(make_batch: MakeBatch, default_rows: int, *, dated: bool) -> MakeBatches:
    """A ``make_batches`` over ``make_batch``: batch ``i`` gets ``np.random.default_rng([seed, i])`` (and its
    date when ``dated``), and the drift from ``drift_from`` on."""

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
                rng=np.random.default_rng([seed, index]),
                feature_drift=feature_drift if index >= drift_from else 0.0,
                concept_drift=concept_drift if index >= drift_from else 0.0,
            )
            for index, batch_date in enumerate(dates)
        ]

    return make_batches
