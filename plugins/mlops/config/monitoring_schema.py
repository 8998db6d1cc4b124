"""The config section of watching a served model: drift, performance and the retrain policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mlops.config.base import Strict as _Strict
from mlops.config.base import check_schedule

DriftMethod = Literal[
    "wasserstein",
    "jensenshannon",
    "psi",
    "kl_div",
    "hellinger",
    "ks",
    "chisquare",
    "z",
    "anderson",
    "ed",
    "t_test",
    "mannw",
]
#: Methods whose score is a p-value: drift when the score is BELOW the threshold. Every other method is a
#: distance (an effect size): drift when the score is AT OR ABOVE the threshold.
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z", "anderson", "t_test", "mannw"})
#: Evidently's stat tests that accept numeric columns only.
NUMERIC_ONLY_DRIFT_METHODS = frozenset({"wasserstein", "ks", "anderson", "ed", "t_test", "mannw"})
#: Evidently's stat tests that accept categorical columns only.
CATEGORICAL_ONLY_DRIFT_METHODS = frozenset({"chisquare", "z"})


class DriftTest(_Strict):
    """How one column's drift is measured (an Evidently stat test) and where it counts as drift.

    Distances (`wasserstein`, `jensenshannon`, `psi`, `kl_div`, `hellinger`, `ed`): drift at or above the
    threshold. p-values (`ks`, `chisquare`, `z`, `anderson`, `t_test`, `mannw`): drift below it. Numeric
    columns only: `wasserstein`, `ks`, `anderson`, `ed`, `t_test`, `mannw`; categorical only: `chisquare`,
    `z`; a method that does not suit the feature's type is refused.
    """

    method: DriftMethod = Field(description="Evidently's stat test.", examples=["psi"])
    threshold: float = Field(
        gt=0.0,
        description="Distance at or above which, or p-value below which, a column drifts.",
        examples=[0.2],
    )


class Drift(_Strict):
    """Per-feature drift tests. The defaults are effect sizes, so large windows do not fire on negligible shifts."""

    numeric: DriftTest = Field(
        default=DriftTest(method="wasserstein", threshold=0.1), description="The test of numeric features."
    )
    categorical: DriftTest = Field(
        default=DriftTest(method="jensenshannon", threshold=0.1),
        description="The test of categorical features.",
    )
    features: dict[str, DriftTest] = Field(
        default={},
        description="Overrides for declared features, by feature name (default: the test of the feature's type).",
        examples=[{"amount": {"method": "psi", "threshold": 0.2}}],
    )
    prediction: DriftTest | None = Field(
        default=None,
        description="The test of the served predictions; default: the numeric test (regression) or the "
        "categorical test (classification).",
    )
    share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="A window has dataset drift when at least this share of features drifts.",
    )
    noise_sigmas: float = Field(
        default=5.0,
        ge=0.0,
        description="Raise a distance test's threshold, on a window small enough for sampling noise to reach "
        "it, to the noise floor of the window's size: the mean plus this many standard deviations of the "
        "test's score between two samples of the reference's own distribution, one of the window's size and "
        "one of the reference's (seeded). `summary.json` records both thresholds. 0: the thresholds as "
        "configured. p-value tests are left as they are.",
        examples=[0],
    )


class Performance(_Strict):
    """Live quality from feedback labels, against the champion's holdout metrics."""

    max_drop: float = Field(
        default=0.05,
        ge=0.0,
        description="Largest worsening of the primary metric on labelled live rows against the champion's "
        "holdout, in metric units.",
    )
    min_labels: int = Field(default=100, ge=1, description="Labelled rows needed to score a window.")


class RetrainPolicy(_Strict):
    """When a drifted window becomes a retraining of the training DAG, and on which data."""

    enabled: bool = Field(default=True, description="`false`: drift only warns.")
    consecutive_windows: int = Field(
        default=2, ge=1, description="Drifted windows in a row (same champion) before retraining."
    )
    cooldown_hours: float = Field(default=24.0, ge=0.0, description="No new retraining this soon after one.")
    min_new_labels: int = Field(
        default=200, ge=0, description="Labelled live rows since the last training needed to retrain."
    )
    max_per_day: int = Field(default=2, ge=1, description="Retrainings per UTC day at most.")
    data: Literal["recent", "sliding", "all"] = Field(
        default="recent",
        description="`recent`: labelled rows of the drifted windows; `sliding`: labelled rows of the last "
        "`sliding_days`; `all`: every accepted batch plus those rows.",
        examples=["sliding"],
    )
    sliding_days: float = Field(
        default=7.0, gt=0.0, description="Length of the sliding window, in days (`data: sliding`)."
    )


class Monitoring(_Strict):
    """The `<name>_monitoring` DAG: drift, data quality and live performance per window of the inference log.

    Also decides when to retrain. By default monitoring is on and runs by hand only. The guide, with how to
    read a report and tune the policy, is [monitoring.md](monitoring.md).
    """

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    enabled: bool = Field(
        default=True,
        description="`false`: no monitoring DAG, and the training DAG does not listen for retraining requests.",
    )
    schedule: str | None = Field(
        default=None,
        description="When to monitor: a preset or cron expression, as for `schedule`; each run's window is its "
        "data interval. null: by hand only, with a form for `start` and `end`.",
        examples=["0 * * * *"],
    )
    min_rows: int = Field(
        default=50,
        ge=1,
        description="Fewer predictions in the window: status `no_data` (not a failure, no alert).",
        examples=[500],
    )
    reference_rows: int = Field(
        default=100_000,
        ge=100,
        description="Training rows kept, with the model's predictions, as the version's reference (a seeded "
        "sample).",
    )
    report_rows: int = Field(
        default=10_000,
        ge=100,
        description="Rows per side that the HTML report draws (a seeded sample; the decisions use the whole "
        "window).",
    )
    drift: Drift = Field(
        default=Drift(),
        description="Per-feature drift tests and when a window drifts.",
        examples=[{"numeric": {"method": "psi", "threshold": 0.2}, "share": 0.3}],
    )
    performance: Performance = Field(default=Performance(), description="Live quality from feedback labels.")
    retrain: RetrainPolicy = Field(
        default=RetrainPolicy(),
        description="When drift becomes a retraining, and on which data.",
        examples=[
            {
                "consecutive_windows": 3,
                "cooldown_hours": 24,
                "min_new_labels": 2000,
                "data": "sliding",
                "sliding_days": 7,
            }
        ],
    )
