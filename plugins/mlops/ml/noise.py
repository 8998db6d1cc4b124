"""The noise floor of a drift test: the score that sampling noise alone stays under, at given sizes.

A distance has no sense of sample size: between two samples of one distribution it is not 0 but a sampling
noise that grows as the samples shrink (about ``sqrt(1/n + 1/m)`` for a window of ``n`` rows and a reference of
``m``). :func:`noise_floor` measures it with the same Evidently test on samples drawn from the reference itself;
:func:`mlops.ml.drift.compute_drift` raises a distance test's threshold to it (``monitoring.drift.noise_sigmas``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: The noise floor (:func:`noise_floor`): draws of the null distribution; the first ones, and all of them when
#: the floor comes near the configured threshold (``NOISE_CLOSE`` of it or more).
NOISE_DRAWS = 400
NOISE_FIRST_DRAWS = 100
NOISE_CLOSE = 0.8
#: Rows per side of a draw at most; the floor of larger sides is scaled from there (see :func:`noise_floor`).
NOISE_MAX_ROWS = 5000
NOISE_SEED = 20261203
#: Divergences (their noise falls as ``1/n + 1/m``); the other distances' falls as its square root.
_DIVERGENCES = frozenset({"psi", "kl_div"})

__all__ = ["NOISE_DRAWS", "NOISE_MAX_ROWS", "NullScores", "noise_floor"]


# The noise floor -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NullScores:
    """The test's scores between two samples of the reference's own distribution, at given sizes."""

    method: str
    current_rows: int  # the sizes drawn (at most NOISE_MAX_ROWS each)
    reference_rows: int
    scores: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)

    @property
    def std(self) -> float:
        mean = self.mean
        return (sum((s - mean) ** 2 for s in self.scores) / max(1, len(self.scores) - 1)) ** 0.5

    def floor(self, sigmas: float) -> float:
        return self.mean + sigmas * self.std


_NULL_CACHE: OrderedDict[tuple[Any, ...], NullScores] = OrderedDict()
_NULL_CACHE_SIZE = 1024
_NULL_LOCK = threading.Lock()


def noise_floor(
    stattest: Any, reference: pd.Series, kind: str, current_rows: int, sigmas: float, threshold: float
) -> float:
    """The score that sampling noise alone stays under, for a window of ``current_rows`` rows against this
    (cleaned) reference: the mean plus ``sigmas`` standard deviations of the test's score over seeded draws.

    Each draw takes, with replacement from the reference, a "window" of the window's size and a "reference" of
    the reference's size, and scores them with the same Evidently test. Both sides are drawn: a window is a
    sample of the distribution and so is the reference, and the noise of their distance comes from both
    (``1/n + 1/m``). Scoring a subsample against the reference it came from would leave the reference's own
    noise out, and on the simulation's 1,000-row windows against 2,400 reference rows it finds about two thirds
    of the noise measured between undrifted windows and the reference.

    ``NOISE_FIRST_DRAWS`` draws are made first; when the floor they give is far below ``threshold`` (under
    ``NOISE_CLOSE`` of it) it cannot raise it and that is enough; otherwise ``NOISE_DRAWS`` in all, for a stable
    floor. The window's size is rounded down to two significant digits (a smaller window is noisier: the floor
    errs on the safe side) so that windows of about one size share the draws, which are cached per reference,
    test and size. Sides above ``NOISE_MAX_ROWS`` rows are drawn at that size and the floor scaled by the
    ratio of ``sqrt(1/n + 1/m)`` (``1/n + 1/m`` for PSI and KL divergence, whose noise falls as the square of a
    distance's), the asymptotic law; at such sizes the floor is far below usual thresholds anyway.
    """
    n = _round_down(current_rows)
    m = len(reference)
    drawn_n, drawn_m = min(n, NOISE_MAX_ROWS), min(m, NOISE_MAX_ROWS)
    power = 1.0 if stattest.name in _DIVERGENCES else 0.5
    scale = ((1 / n + 1 / m) / (1 / drawn_n + 1 / drawn_m)) ** power
    key = (_fingerprint(reference), stattest.name, kind, drawn_n, drawn_m)
    with _NULL_LOCK:
        null = _NULL_CACHE.get(key)
    if null is None:
        null = _null_scores(stattest, reference, kind, drawn_n, drawn_m, 0, NOISE_FIRST_DRAWS)
    if len(null.scores) < NOISE_DRAWS and scale * null.floor(sigmas) >= NOISE_CLOSE * threshold:
        more = _null_scores(stattest, reference, kind, drawn_n, drawn_m, 1, NOISE_DRAWS - len(null.scores))
        null = NullScores(null.method, drawn_n, drawn_m, null.scores + more.scores)
    with _NULL_LOCK:
        _NULL_CACHE[key] = null
        _NULL_CACHE.move_to_end(key)
        while len(_NULL_CACHE) > _NULL_CACHE_SIZE:
            _NULL_CACHE.popitem(last=False)
    return float(scale * null.floor(sigmas))


def _null_scores(
    stattest: Any, reference: pd.Series, kind: str, rows: int, reference_rows: int, batch: int, draws: int
) -> NullScores:
    """``draws`` scores of the test between two samples drawn from the reference (seeded by sizes and batch)."""
    import numpy as np
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    rng = np.random.default_rng((NOISE_SEED, rows, reference_rows, batch))
    size = len(reference)
    scores = []
    for _ in range(draws):
        ref = reference.iloc[rng.integers(0, size, reference_rows)]
        cur = reference.iloc[rng.integers(0, size, rows)]
        scores.append(float(stattest(ref, cur, column_type, None).drift_score))
    return NullScores(stattest.name, rows, reference_rows, tuple(scores))


def _round_down(rows: int) -> int:
    """``rows`` rounded down to two significant digits (987 -> 980, 12,345 -> 12,000); at least 1."""
    if rows < 100:
        return max(rows, 1)
    unit = 10 ** (len(str(rows)) - 2)
    return rows // unit * unit


def _fingerprint(values: pd.Series) -> tuple[Any, ...]:
    """Identifies a reference column's values (in order) for the cache of null scores."""
    import pandas as pd

    hashed = pd.util.hash_pandas_object(values, index=False).to_numpy()
    return (len(values), str(values.dtype), int(hashed.sum()), int(hashed[::7].sum()))
