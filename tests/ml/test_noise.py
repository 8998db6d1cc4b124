"""The noise floor of a drift test: what sampling noise alone reaches, measured on draws from the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.ml import noise

NOISE = 5.0


def _normal(seed: int, rows: int, shift: float = 0.0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(10.0 + shift, 2.0, rows))


@pytest.mark.unit
def test_the_floor_covers_the_noise_between_independent_samples() -> None:
    """Both sides are drawn: the floor's null distribution is that of a fresh window against the reference (the
    window's noise and the reference's), not that of a subsample against the reference it came from."""
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    reference = _normal(3, 300)
    stattest = get_stattest(reference, reference, ColumnType.Numerical, "wasserstein")
    observed = [
        float(stattest(reference, _normal(1000 + i, 200), ColumnType.Numerical, 0.1).drift_score)
        for i in range(300)
    ]
    floor = noise.noise_floor(stattest, reference, "numeric", 200, NOISE, 0.1)
    assert max(observed) < floor
    key_sizes = (200, 300)
    null = next(v for k, v in noise._NULL_CACHE.items() if k[1] == "wasserstein" and k[3:] == key_sizes)
    assert len(null.scores) == noise.NOISE_DRAWS  # near the threshold: every draw
    assert null.mean == pytest.approx(np.mean(observed), rel=0.15)


@pytest.mark.unit
def test_windows_of_about_one_size_share_their_draws() -> None:
    assert [noise._round_down(n) for n in (1, 99, 100, 987, 1000, 12_345)] == [1, 99, 100, 980, 1000, 12_000]


@pytest.mark.unit
@pytest.mark.parametrize("method", ["wasserstein", "psi"])
def test_the_floor_of_sides_above_the_draw_size_is_scaled(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sides above NOISE_MAX_ROWS are drawn at that size and the floor scaled by the asymptotic law; it matches
    the floor drawn at full size."""
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    reference = _normal(13, 12_000)
    stattest = get_stattest(reference, reference, ColumnType.Numerical, method)
    monkeypatch.setattr(noise, "NOISE_MAX_ROWS", 3000)
    scaled = noise.noise_floor(stattest, reference, "numeric", 12_000, NOISE, 0.1)
    monkeypatch.setattr(noise, "NOISE_MAX_ROWS", 12_000)
    full = noise.noise_floor(stattest, reference, "numeric", 12_000, NOISE, 0.1)
    assert scaled == pytest.approx(full, rel=0.25)
    assert scaled < 0.1  # at these sizes the floor never binds a threshold of 0.1
