"""The frames both contenders get: a reference and a current window, 20 features from seeded generators.

Some columns drift clearly, some not at all, a few sit next to the 0.1 threshold of the default tests (normed
Wasserstein, Jensen-Shannon), so that agreement is a real test; there are missing and infinite values, a
numeric column with four distinct values and an integer one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring_bench import SEED


@dataclass(frozen=True)
class Column:
    """One generated feature: how both sides are drawn, and what a reader should expect of it."""

    name: str
    kind: str  # numeric | categorical
    expect: str  # clear drift | no drift | near the threshold
    description: str
    draw: Callable[[Any, int, bool], Any]  # (rng, rows, is_current) -> values


def _mix_for_distance(p: Any, towards: Any, target: float) -> Any:
    """The mixture ``(1-t)·p + t·towards`` whose Jensen-Shannon distance to ``p`` is ``target`` (bisection)."""
    import numpy as np
    from scipy.spatial import distance

    p, towards = np.asarray(p, dtype=float), np.asarray(towards, dtype=float)
    low, high = 0.0, 1.0
    for _ in range(60):
        t = (low + high) / 2
        if distance.jensenshannon(p, (1 - t) * p + t * towards) < target:
            low = t
        else:
            high = t
    mixed = (1 - t) * p + t * towards
    return mixed / mixed.sum()


def _with_missing(rng: Any, values: Any, nan: float, inf: float = 0.0) -> Any:
    """``values`` as floats with a share ``nan`` missing and a share ``inf`` infinite (half each sign)."""
    import numpy as np

    values = values.astype(float)
    draw = rng.random(len(values))
    values[draw < nan] = np.nan
    values[(draw >= nan) & (draw < nan + inf / 2)] = np.inf
    values[(draw >= nan + inf / 2) & (draw < nan + inf)] = -np.inf
    return values


def _categories(rng: Any, rows: int, levels: list[str], p: Any, nan: float = 0.0) -> Any:
    """``rows`` draws of ``levels`` with weights ``p``, a share ``nan`` of them missing."""
    import numpy as np

    values = rng.choice(np.array(levels, dtype=object), size=rows, p=np.asarray(p) / np.sum(p))
    if nan:
        values[rng.random(rows) < nan] = None
    return values


def columns() -> list[Column]:
    """The 20 features: 14 numeric, 6 categorical."""
    import numpy as np

    def normal_shift(shift: float, scale: float = 1.0, sigma: float = 1.0, mean: float = 0.0):
        # Normed Wasserstein of a location shift = shift / sigma; of a scale change s = (s - 1)·E|Z| ≈ 0.8·(s-1).
        return lambda rng, n, cur: rng.normal(
            mean + (shift * sigma if cur else 0.0), sigma * (scale if cur else 1), n
        )

    levels5 = [f"L{i}" for i in range(5)]
    p5 = [0.35, 0.25, 0.2, 0.12, 0.08]
    levels20 = [f"G{i:02d}" for i in range(20)]
    p20 = np.linspace(1.0, 0.1, 20)
    p20 = p20 / p20.sum()
    levels8 = [f"R{i}" for i in range(8)]
    p8 = np.array([0.22, 0.18, 0.15, 0.13, 0.11, 0.09, 0.07, 0.05])
    q8 = _mix_for_distance(p8, p8[::-1], 0.097)
    levels4 = ["web", "mobile", "store", "phone"]
    p4 = np.array([0.45, 0.3, 0.15, 0.1])
    q4 = _mix_for_distance(p4, p4[::-1], 0.103)
    levels50 = [f"city_{i:02d}" for i in range(50)]
    p50 = 1.0 / np.arange(1, 51)
    values4 = np.array([0.0, 1.0, 2.0, 3.0])
    pv = np.array([0.4, 0.3, 0.2, 0.1])
    qv = _mix_for_distance(pv, pv[::-1], 0.099)

    return [
        Column("n00", "numeric", "no drift", "normal(0, 1), same on both sides", normal_shift(0.0)),
        Column(
            "n01",
            "numeric",
            "no drift",
            "normal(50, 10), 1% missing and 0.2% ±inf on both sides",
            lambda rng, n, cur: _with_missing(rng, rng.normal(50, 10, n), 0.01, 0.002),
        ),
        Column(
            "n02",
            "numeric",
            "no drift",
            "lognormal(0, 0.5), same",
            lambda rng, n, cur: rng.lognormal(0, 0.5, n),
        ),
        Column(
            "n03", "numeric", "no drift", "uniform(0, 100), same", lambda rng, n, cur: rng.uniform(0, 100, n)
        ),
        Column("n04", "numeric", "clear drift", "normal, mean +0.5σ (W ≈ 0.5)", normal_shift(0.5, sigma=3.0)),
        Column("n05", "numeric", "clear drift", "normal, σ × 1.5 (W ≈ 0.4)", normal_shift(0.0, scale=1.5)),
        Column(
            "n06",
            "numeric",
            "clear drift",
            "exponential, scale 1 → 1.6 (W ≈ 0.6)",
            lambda rng, n, cur: rng.exponential(1.6 if cur else 1.0, n),
        ),
        Column(
            "n07", "numeric", "near the threshold", "normal, mean +0.097σ (W ≈ 0.097)", normal_shift(0.097)
        ),
        Column(
            "n08",
            "numeric",
            "near the threshold",
            "normal(100, 20), mean +0.103σ (W ≈ 0.103)",
            normal_shift(0.103, sigma=20.0, mean=100.0),
        ),
        Column(
            "n09",
            "numeric",
            "near the threshold",
            "exponential, scale 1 → 1.1 (W ≈ 0.1), 2% missing in the current window",
            lambda rng, n, cur: _with_missing(
                rng, rng.exponential(1.1 if cur else 1.0, n), 0.02 if cur else 0.0
            ),
        ),
        Column(
            "n10",
            "numeric",
            "near the threshold",
            "four values 0–3 (float): tested as categories, Jensen-Shannon ≈ 0.099",
            lambda rng, n, cur: rng.choice(values4, size=n, p=qv if cur else pv),
        ),
        Column(
            "n11",
            "numeric",
            "no drift",
            "Poisson(30), int64",
            lambda rng, n, cur: rng.poisson(30, n).astype("int64"),
        ),
        Column(
            "n12",
            "numeric",
            "no drift",
            "normal(0, 1), 5% missing in the current window only",
            lambda rng, n, cur: _with_missing(rng, rng.normal(0, 1, n), 0.05 if cur else 0.0),
        ),
        Column(
            "n13",
            "numeric",
            "clear drift",
            "two normal modes, weights 0.7/0.3 → 0.4/0.6",
            lambda rng, n, cur: np.where(
                rng.random(n) < (0.4 if cur else 0.7), rng.normal(-2, 1, n), rng.normal(2, 1, n)
            ),
        ),
        Column(
            "c0",
            "categorical",
            "no drift",
            "category, 5 levels, same",
            lambda rng, n, cur: _categories(rng, n, levels5, p5),
        ),
        Column(
            "c1",
            "categorical",
            "clear drift",
            "category, 20 levels, frequencies reversed",
            lambda rng, n, cur: _categories(rng, n, levels20, p20[::-1] if cur else p20),
        ),
        Column(
            "c2",
            "categorical",
            "near the threshold",
            "category, 8 levels, Jensen-Shannon ≈ 0.097, 1% missing",
            lambda rng, n, cur: _categories(rng, n, levels8, q8 if cur else p8, nan=0.01),
        ),
        Column(
            "c3",
            "categorical",
            "near the threshold",
            "strings, 4 levels, Jensen-Shannon ≈ 0.103, 2% missing",
            lambda rng, n, cur: _categories(rng, n, levels4, q4 if cur else p4, nan=0.02),
        ),
        Column(
            "c4",
            "categorical",
            "no drift",
            "strings, 50 levels (Zipf), same, 2% missing",
            lambda rng, n, cur: _categories(rng, n, levels50, p50, nan=0.02),
        ),
        Column(
            "c5",
            "categorical",
            "clear drift",
            "strings, 3 levels; a new level takes 30% of the current window",
            lambda rng, n, cur: _categories(
                rng, n, ["A", "B", "C", "NEW"], [0.35, 0.21, 0.14, 0.3] if cur else [0.5, 0.3, 0.2, 0.0]
            ),
        ),
    ]


CATEGORY_DTYPE = ("c0", "c1", "c2")  # pandas `category`; the other categorical columns are plain strings


def generate(rows: int, reference_rows: int, seed: int = SEED) -> tuple[Any, Any]:
    """(reference, current) frames; each column from its own seeded stream, so each is reproducible alone."""
    import numpy as np
    import pandas as pd

    specs = columns()
    streams = np.random.SeedSequence(seed).spawn(2 * len(specs))
    frames = []
    for side, (n, is_current) in enumerate(((reference_rows, False), (rows, True))):
        data = {}
        for i, spec in enumerate(specs):
            values = spec.draw(np.random.default_rng(streams[2 * i + side]), n, is_current)
            if spec.name in CATEGORY_DTYPE:
                values = pd.Categorical(values)
            data[spec.name] = values
        frames.append(pd.DataFrame(data))
    return frames[0], frames[1]


def write_frames(rows: int, reference_rows: int, workdir: Path) -> None:
    """Generate both frames, check that Evidently types them as the kit does, save them as Parquet."""
    reference, current = generate(rows, reference_rows)
    kinds = {spec.name: spec.kind for spec in columns()}
    inferred = {**evidently_types(reference), **evidently_types(current)}
    mismatched = {name: inferred[name] for name, kind in kinds.items() if inferred[name] != kind[:3]}
    if mismatched:
        raise RuntimeError(f"Evidently would not type these columns as the kit does: {mismatched}")
    reference.to_parquet(workdir / "reference.parquet", index=False)
    current.to_parquet(workdir / "current.parquet", index=False)
    (workdir / "kinds.json").write_text(json.dumps(kinds), encoding="utf-8")


def evidently_types(frame: Any) -> dict[str, str]:
    """The column types Evidently infers for a plain DataFrame (what ``Report.run`` does with one)."""
    from evidently.core.datasets import infer_column_type

    return {name: infer_column_type(frame[name]).value for name in frame.columns}
