"""Per-column drift with Evidently's own stat tests, column by column.

Evidently's ``DataDriftPreset`` decides each column's drift by cleaning the column (infinities and missing values
dropped), choosing a stat test (``get_stattest``) and calling it. Around that it computes, per column, a
correlation matrix of every numeric column, histograms and binned scatter plots for its widgets, and it does so
three times (the column count, the table and each ``ValueDrift``). On a million rows that is minutes and
gigabytes. Here we call the same two functions on the same cleaned columns and nothing else, so every decision
is Evidently's decision by construction, and the heavy visual report is drawn from a sample
(:mod:`mlops.monitoring.analysis`). Two things make it faster still without changing a bit of a score: the current side
of a Wasserstein test is handed over sorted (the test sorts it anyway), and helper threads clean and sort the
next columns while one is tested (``bench/monitoring_benchmark.py`` measures it against the plain preset).

Every result carries an effect size next to the test's score: for a p-value test, the normed Wasserstein
distance (numeric) or the Jensen-Shannon distance (categorical), so a reader sees whether a tiny p-value on a
large window is a shift that matters.

A distance has no sense of sample size: between two samples of one distribution it is not 0 but a sampling
noise that grows as the samples shrink (about ``sqrt(1/n + 1/m)`` for a window of ``n`` rows and a reference of
``m``). With ``noise_sigmas`` > 0 a distance test's threshold is raised, where it has to be, to the **noise
floor** of the window's size: the mean plus ``noise_sigmas`` standard deviations of the same Evidently test's
score between two samples drawn (with replacement, seeded) from the reference itself, one of the window's size
and one of the reference's (:func:`noise_floor`). The decision is then Evidently's at that effective threshold,
and the result records both thresholds. p-value tests are left alone: their threshold already is their
false-alarm rate.

>>> result = compute_drift(reference, current, {"amount": "numeric", "channel": "categorical"},
...                        {"amount": DriftTest(method="wasserstein", threshold=0.1), "channel": None})  # doctest: +SKIP
>>> result.columns["amount"].drifted, result.share                                            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlops.config import P_VALUE_METHODS, DriftTest
from mlops.ml.noise import NullScores, noise_floor

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

Kind = Literal["numeric", "categorical"]
PREDICTION = "prediction"
#: A numeric column with at most this many distinct values is tested like a categorical one (Evidently's rule).
LOW_CARDINALITY = 5

__all__ = [
    "ColumnDrift",
    "DriftResult",
    "NullScores",
    "column_drift",
    "compute_drift",
    "drift_tests",
    "noise_floor",
]


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: the test, its score and decision, and an effect size that a p-value cannot give."""

    column: str
    kind: Kind
    method: str
    threshold: float
    score: float
    drifted: bool
    effect_method: str
    effect_size: float
    reference_rows: int
    current_rows: int
    dropped_current: int  # missing or infinite values left out of the test
    #: The threshold asked for (config, or Evidently's default); ``threshold`` is the one the decision used:
    #: the larger of this one and ``noise_floor``.
    configured_threshold: float | None = None
    #: The sampling noise of the test at these sizes (:func:`noise_floor`); None: not computed (a p-value test,
    #: or ``noise_sigmas`` 0).
    noise_floor: float | None = None

    @property
    def score_is_p_value(self) -> bool:
        return self.method in P_VALUE_METHODS

    @property
    def raised_by_noise(self) -> bool:
        """The noise floor of this window's size raised the threshold above the configured one."""
        return self.configured_threshold is not None and self.threshold > self.configured_threshold

    def explain(self) -> str:
        """One line, e.g. ``amount: wasserstein 0.42 >= 0.1 (drift)``, or with a threshold raised to the noise
        floor of a small window: ``prediction: wasserstein 0.108 < 0.131 (no drift; threshold 0.1 raised to the
        noise of 1000 rows)``."""
        relation = (
            (">=" if self.drifted else "<") if not self.score_is_p_value else ("<" if self.drifted else ">=")
        )
        effect = f"; {self.effect_method} {self.effect_size:.3g}" if self.effect_method != self.method else ""
        noise = (
            f"; threshold {self.configured_threshold:g} raised to the noise of {self.current_rows} rows"
            if self.raised_by_noise
            else ""
        )
        verdict = "drift" if self.drifted else "no drift"
        return (
            f"{self.column}: {self.method} {self.score:.3g} {relation} {self.threshold:.3g} "
            f"({verdict}{effect}{noise})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DriftResult:
    """Drift of every tested column, and whether the share of drifted columns reaches ``share_threshold``."""

    columns: dict[str, ColumnDrift]
    share_threshold: float

    @property
    def drifted_columns(self) -> list[str]:
        """Drifted columns, the largest effect first."""
        drifted = [c for c in self.columns.values() if c.drifted]
        return [c.column for c in sorted(drifted, key=lambda c: c.effect_size, reverse=True)]

    @property
    def share(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share >= self.share_threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "share_threshold": self.share_threshold,
            "dataset_drift": self.dataset_drift,
            "drifted_columns": self.drifted_columns,
            "columns": {name: column.to_dict() for name, column in self.columns.items()},
        }


def drift_tests(config: PipelineConfig) -> dict[str, DriftTest]:
    """The test of every feature (per-feature override, else the test of its type) and of the prediction."""
    drift = config.monitoring.drift
    tests = {
        feature.name: drift.features.get(
            feature.name, drift.numeric if feature.type == "numeric" else drift.categorical
        )
        for feature in config.features
    }
    tests[PREDICTION] = drift.prediction or (
        drift.numeric if config.task == "regression" else drift.categorical
    )
    return tests


def prediction_kind(config: PipelineConfig) -> Kind:
    return "numeric" if config.task == "regression" else "categorical"


def _clean(series: pd.Series) -> pd.Series:
    """What Evidently tests: the column without infinities and missing values (its ``replace([-inf, inf], nan)
    .dropna()``), without that copy when the dtype shows there is nothing to drop."""
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        finite = np.isfinite(series.to_numpy())
        return series if finite.all() else series[finite]
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return series  # a NumPy integer or boolean column holds neither a missing value nor an infinity
    if isinstance(dtype, pd.CategoricalDtype) and not _has_infinity(dtype.categories):
        return series.dropna()
    if (
        isinstance(dtype, np.dtype)
        and dtype.kind == "O"
        and pd.api.types.infer_dtype(series, skipna=True) == "string"
    ):
        return series.dropna()  # text only: no infinity to replace, and nothing for pandas to convert
    return series.replace([-np.inf, np.inf], np.nan).dropna()


def _has_infinity(values: pd.Index) -> bool:
    import numpy as np

    if values.dtype.kind == "f":
        return bool(np.isinf(values.to_numpy()).any())
    return values.dtype.kind == "O" and bool(values.isin([np.inf, -np.inf]).any())


def _comparable(reference: pd.Series, current: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Categorical values compared as text when the two sides disagree on the type (1 vs "1")."""
    from pandas.api.types import is_numeric_dtype

    if is_numeric_dtype(reference) != is_numeric_dtype(current):
        return reference.astype(str), current.astype(str)
    return reference, current


def column_drift(
    column: str,
    reference: pd.Series,
    current: pd.Series,
    kind: Kind,
    test: DriftTest | None,
    noise_sigmas: float = 0.0,
) -> ColumnDrift:
    """Evidently's drift decision on one column; ``test=None`` lets Evidently choose as its preset does.

    ``noise_sigmas`` > 0: a distance test's threshold is at least the noise floor of these sizes
    (:func:`noise_floor`).

    Raises:
        ValueError: a side has no usable value, or a numeric column holds text (Evidently's own errors).
    """
    return _decide(_prepare(column, reference, current, kind, test, noise_sigmas))


@dataclass(frozen=True)
class _Prepared:
    """A column ready for its test: cleaned sides, the chosen test, the current side sorted when that helps."""

    column: str
    kind: Kind
    reference: pd.Series
    current: pd.Series
    presorted: pd.Series | None  # the current values sorted, for Wasserstein (the test or the effect size)
    stattest: Any
    threshold: float | None  # the one the decision uses: the configured one, or the noise floor when higher
    dropped_current: int
    configured_threshold: float | None = None
    noise_floor: float | None = None


def _prepare(
    column: str,
    reference: pd.Series,
    current: pd.Series,
    kind: Kind,
    test: DriftTest | None,
    noise_sigmas: float = 0.0,
) -> _Prepared:
    """Evidently's cleaning and choice of test (``get_stattest``), the sorted current side, and the threshold
    (raised to the noise floor of the window's size when ``noise_sigmas`` > 0 and the test is a distance)."""
    import pandas as pd
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    ref, cur = _clean(reference), _clean(current)
    if ref.empty or cur.empty:
        side = "reference" if ref.empty else "current"
        raise ValueError(f"column '{column}' has no usable value in the {side} data")
    if kind == "categorical":
        ref, cur = _comparable(ref, cur)
    elif not (pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur)):
        raise ValueError(f"column '{column}' is numeric but holds non-numeric values")
    if test is not None and kind == "numeric" and _low_cardinality(ref, cur):
        # Evidently's preset tests a numeric column with few values as categorical; do the same with the
        # configured test when it applies to categories, else with Jensen-Shannon.
        test = test if test.method not in _NUMERIC_ONLY else DriftTest(method="jensenshannon", threshold=0.1)
    stattest = get_stattest(ref, cur, column_type, test.method if test else None)
    wasserstein = stattest.name == "wasserstein" or (kind == "numeric" and stattest.name in P_VALUE_METHODS)
    configured = float(test.threshold if test else stattest.default_threshold)
    floor = (
        noise_floor(stattest, ref, kind, len(cur), noise_sigmas, configured)
        if noise_sigmas > 0 and stattest.name not in P_VALUE_METHODS
        else None
    )
    return _Prepared(
        column=column,
        kind=kind,
        reference=ref,
        current=cur,
        presorted=_sorted(cur) if wasserstein else None,
        stattest=stattest,
        threshold=max(configured, floor) if floor is not None else (test.threshold if test else None),
        dropped_current=len(current) - len(cur),
        configured_threshold=configured,
        noise_floor=floor,
    )


def _decide(prepared: _Prepared) -> ColumnDrift:
    """The test's call on the cleaned columns, and the effect size."""
    from evidently.legacy.core import ColumnType

    stattest, ref, cur = prepared.stattest, prepared.reference, prepared.current
    column_type = ColumnType.Numerical if prepared.kind == "numeric" else ColumnType.Categorical
    ordered = cur if prepared.presorted is None else prepared.presorted  # the same values
    outcome = stattest(
        ref, ordered if stattest.name == "wasserstein" else cur, column_type, prepared.threshold
    )
    effect_method, effect = _effect_size(ref, ordered, prepared.kind, stattest.name, outcome.drift_score)
    return ColumnDrift(
        column=prepared.column,
        kind=prepared.kind,
        method=stattest.name,
        threshold=float(outcome.actual_threshold),
        score=float(outcome.drift_score),
        drifted=bool(outcome.drifted),
        effect_method=effect_method,
        effect_size=effect,
        reference_rows=len(ref),
        current_rows=len(cur),
        dropped_current=prepared.dropped_current,
        configured_threshold=prepared.configured_threshold,
        noise_floor=prepared.noise_floor,
    )


_NUMERIC_ONLY = frozenset({"wasserstein", "ks", "anderson", "ed", "t_test", "mannw"})


def _sorted(current: pd.Series) -> pd.Series:
    """The current values in ascending order, for Evidently's normed Wasserstein distance.

    The score is bit for bit the same whatever the order of the current values: SciPy's
    ``wasserstein_distance`` sorts each side and (stably) their union before it sums, and sorted input gives
    it the same sorted arrays, hence the same sums; only the reference is summed in its own order (for the
    normalisation), and it is left as it is. On sorted input those sorts are nearly free, so the work moves
    to this sort, which a helper thread does ahead of the test (:func:`compute_drift`).
    """
    import numpy as np
    import pandas as pd

    return pd.Series(np.sort(current.to_numpy()), name=current.name, copy=False)


def _low_cardinality(reference: pd.Series, current: pd.Series) -> bool:
    """At most LOW_CARDINALITY distinct values over both sides (as Evidently counts), without a concatenated
    copy and without hashing the (large) current side when the (small) reference already has more."""
    import numpy as np

    seen = reference.unique()
    if len(seen) > LOW_CARDINALITY:
        return False
    return len(np.union1d(seen, current.unique())) <= LOW_CARDINALITY


def _effect_size(
    reference: pd.Series, current: pd.Series, kind: Kind, method: str, score: float
) -> tuple[str, float]:
    """The test's own score when it is a distance; else the normed Wasserstein or Jensen-Shannon distance."""
    if method not in P_VALUE_METHODS:
        return method, float(score)
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    effect_method = "wasserstein" if kind == "numeric" else "jensenshannon"
    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    stattest = get_stattest(reference, current, column_type, effect_method)
    return effect_method, float(stattest(reference, current, column_type, None).drift_score)


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, Kind],
    tests: dict[str, DriftTest | None],
    share_threshold: float = 0.5,
    noise_sigmas: float = 0.0,
) -> DriftResult:
    """Drift of each column in ``kinds`` (no copy of either frame is made).

    The tests run one at a time, in this thread and in the order of ``kinds``, as
    :func:`column_drift` runs them; with more than one CPU, helper threads prepare the next columns meanwhile
    (cleaning, choice of test, sorting the current side: NumPy sorts without the GIL). At most one test's
    working memory is in use at a time, and a prepared column waits only for the test before it.

    Args:
        reference: the reference rows (e.g. the champion's training sample).
        current: the window's rows.
        kinds: column -> ``numeric`` or ``categorical``.
        tests: column -> the test to use (None: Evidently's default choice for that column).
        share_threshold: the share of drifted columns that makes the dataset drift.
        noise_sigmas: > 0: each distance test's threshold is at least the noise floor of the window's size
            (:func:`noise_floor`; ``monitoring.drift.noise_sigmas``); 0: the thresholds as given.

    Raises:
        ValueError: as :func:`column_drift`, for the first such column in the order of ``kinds``.
    """
    import importlib

    # Evidently is imported, and the columns taken out of the frames (pandas caches them), in this thread only.
    importlib.import_module("evidently.legacy.calculations.stattests")
    jobs = [
        (name, reference[name], current[name], kind, tests.get(name), noise_sigmas)
        for name, kind in kinds.items()
    ]
    helpers = min(drift_workers() - 1, len(jobs) - 1)
    columns: dict[str, ColumnDrift] = {}
    if helpers < 1:
        for job in jobs:
            columns[job[0]] = column_drift(*job)
        return DriftResult(columns=columns, share_threshold=share_threshold)

    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor
    from itertools import islice

    waiting = iter(jobs)
    with ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="drift") as pool:
        # Each helper prepares one column while this thread tests the one before: memory stays bounded.
        ahead: deque[Future[_Prepared]] = deque(
            pool.submit(_prepare, *job) for job in islice(waiting, helpers)
        )
        while ahead:
            prepared = ahead.popleft().result()
            following = next(waiting, None)
            if following is not None:
                ahead.append(pool.submit(_prepare, *following))
            columns[prepared.column] = _decide(prepared)
    return DriftResult(columns=columns, share_threshold=share_threshold)


#: At most this many threads work on columns at once: the tests' thread and helpers that prepare columns.
MAX_DRIFT_WORKERS = 4


def drift_workers() -> int:
    """Threads for :func:`compute_drift`: the CPUs this process may use, at most ``MAX_DRIFT_WORKERS``."""
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DRIFT_WORKERS))
