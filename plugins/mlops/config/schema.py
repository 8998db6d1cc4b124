"""The pipeline config: one YAML file per pipeline in ``include/pipelines/``.

The schema is typed (pydantic). Errors name the file, the field and what is allowed, so that a broken file
breaks only its own pipeline and says why. This module is imported at DAG parse time: it must stay light
(no pandas, sklearn, mlflow).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from mlops.config import settings
from mlops.config.base import CRON_PRESETS, check_schedule
from mlops.config.base import Strict as _Strict
from mlops.config.monitoring_schema import (
    CATEGORICAL_ONLY_DRIFT_METHODS,
    NUMERIC_ONLY_DRIFT_METHODS,
    Monitoring,
)
from mlops.config.serving_schema import Deploy, Serving
from mlops.errors import ConfigError

#: libyaml's safe loader parses ~8x faster than the pure-Python one; DAG files parse configs constantly.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
ESTIMATOR_PATTERN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")

Task = Literal["classification", "regression"]
ClassificationMetric = Literal[
    "accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "log_loss"
]
RegressionMetric = Literal["rmse", "mae", "r2", "mape"]
CLASSIFICATION_METRICS: tuple[str, ...] = ClassificationMetric.__args__  # type: ignore[attr-defined]
REGRESSION_METRICS: tuple[str, ...] = RegressionMetric.__args__  # type: ignore[attr-defined]
#: Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})
#: Metrics computed from predicted probabilities (the estimator needs ``predict_proba``).
PROBABILITY_METRICS = frozenset({"roc_auc", "average_precision", "log_loss"})
AlertEvent = Literal["failure", "rejected", "promoted", "drift", "approval", "data_warning"]
_METRIC_LIST = {
    "classification": ", ".join(f"`{m}`" for m in CLASSIFICATION_METRICS),
    "regression": ", ".join(f"`{m}`" for m in REGRESSION_METRICS),
}


class BatchWait(_Strict):
    """Wait for the batch to arrive before ingesting it (task `wait_for_batch` at the head of the training DAG).

    The wait happens in Airflow's triggerer, not in a worker slot: a scheduled run can start before the day's
    batch lands and proceeds as soon as it does. Past the timeout the run ends as "no data" (skipped, with a
    `data_warning` alert saying where it looked), not as a failure. A manual run does not wait: a missing batch
    fails it at once.
    """

    timeout_hours: float = Field(
        default=6.0,
        gt=0.0,
        description='How long a scheduled run waits for its batch before it ends as "no data".',
        examples=[6],
    )
    poke_seconds: float = Field(
        default=60.0,
        ge=1.0,
        description="How often the triggerer looks for the batch.",
        examples=[30],
    )


class DataSource(_Strict):
    """Where a run reads its batch (one CSV or Parquet file per run) when it is not given a `data_uri`.

    The batch is copied into the kit's data store under its SHA-256, so ingesting the same file twice is
    harmless; the source file is never modified or deleted. How `{ds}` and relative paths resolve:
    [How a run finds its batch](#how-a-run-finds-its-batch).
    """

    source: str = Field(
        description="A local path, a `file://` URI or an `s3://bucket/key` URI of the batch (any other scheme, "
        "`http://` or `gs://` say, is rejected). `{ds}` becomes the run's date as `YYYY-MM-DD` and "
        "`{ds_nodash}` as `YYYYMMDD` (UTC). A relative path is relative to the folder or bucket holding the "
        "data store (`MLOPS_HOME` on the embedded default, `s3://mlops-data` on the stack), not to the YAML "
        "file; `~` is expanded. S3 uses boto3's usual settings (`AWS_*`, `AWS_ENDPOINT_URL`). Also the "
        "pre-filled `data_uri` of the trigger form. Inside a `{...}` flow mapping, quote a value holding "
        "`{ds}`.",
        examples=[
            "landing/fraud/{ds}.csv",
            "/data/fraud/{ds_nodash}.parquet",
            "s3://acme-ml-landing/churn/{ds}/subscribers.parquet",
        ],
    )
    format: Literal["auto", "csv", "parquet"] = Field(
        default="auto",
        description="How the batch is read. `auto`: by the extension of the resolved URI (`.parquet` or "
        "`.pq`: Parquet, anything else: CSV); set it when the file name does not say. CSV means a plain, "
        "comma-separated, uncompressed file with a header row, column types inferred by pandas (convert "
        "tab-separated or `.csv.gz` files first).",
        examples=["parquet"],
    )

    wait: BatchWait | None = Field(
        default=BatchWait(),
        description="Wait for the batch at `source` (or the run's `data_uri`) before ingesting it, up to a "
        "timeout (the default: 6 h); null: a run whose batch is missing fails at `ingest`.",
        examples=[{"timeout_hours": 6, "poke_seconds": 60}],
    )
    landing_roots: list[str] = Field(
        default=[],
        description="More folders or `s3://bucket/prefix`es a run may ingest from (relative to `MLOPS_HOME`). "
        "A `data_uri` is read only under a root: always `MLOPS_HOME/landing` and the `landing` beside the "
        "store (`s3://b/store`: `s3://b/landing`), the folder or prefix of `source` "
        "(before its first `{`; not the home itself nor `/`), the store's `<pipeline>/retrain/` (the "
        "retraining batches), these, and the operator's `MLOPS_DATA_ROOTS`. Anything else (`../`, a symlink "
        "that leads out, another S3 prefix) fails `ingest` at once and nothing is copied. "
        "[How a run finds its batch](#how-a-run-finds-its-batch).",
        examples=[["/srv/drop/fraud", "s3://acme-ml-landing/fraud/"]],
    )

    @field_validator("source", "landing_roots")
    @classmethod
    def _known_scheme(cls, value: str | list[str]) -> str | list[str]:
        for uri in [value] if isinstance(value, str) else value:
            scheme = uri.split("://", 1)[0] if "://" in uri else ""
            if scheme not in ("", "file", "s3"):
                raise ValueError(f"scheme '{scheme}://' is not supported; use a path, file:// or s3://")
        return value


class Feature(_Strict):
    """One input column of the model.

    A column that holds numbers but means a category (a store id, a postcode, an education level coded 1..7)
    should be declared `categorical`: it is then one-hot encoded rather than scaled.

    **One typing, end to end.** Each feature has one canonical form wherever its values are (a CSV or Parquet
    batch, validation, the training frame, the model's signature, a request to the model server, the inference
    log, the monitoring window, the retraining batch): a `numeric` feature is a float (integers and nullable
    integers included; booleans are not numbers: declare them `categorical`); a `categorical` feature is
    text, one spelling per category whatever type carried it: `3`, `3.0`, `"3"` and `"3.0"` are the category
    `"3"`; `true`, `"True"` and `"TRUE"` are `"true"`; any other text is kept as it is (`"007"` stays
    `"007"`: a CSV's categorical columns are read as text). `allowed` values and slice `values` compare in
    that form, so `allowed: [0, 1, 2]` matches codes read from a CSV, sent as JSON numbers or strings, and
    read back from the inference log.
    """

    name: str = Field(
        min_length=1,
        description="Column name in the batch. Unique among the features, and not the `target`.",
        examples=["tenure_months"],
    )
    type: Literal["numeric", "categorical"] = Field(
        description="Chooses the checks (`numeric`: the column must have a numeric dtype) and the "
        "[preprocessing](#preprocessing-follows-the-feature-types).",
        examples=["numeric"],
    )
    nullable: bool = Field(
        default=False,
        description="`false`: a null in this column rejects the batch. `true`: nulls are allowed (and "
        "imputed). `expectations.columns.<name>.max_null_fraction` replaces this rule.",
    )
    description: str = Field(default="", description="Documentation only (not used by the code).")


class ColumnRule(_Strict):
    """Explicit expectations on one column, on top of those derived from the declared schema.

    The key is a declared column (a feature or the target). Every field is optional. Nulls never count
    against `min`, `max` or `allowed`; only `nullable` and `max_null_fraction` govern them.
    """

    min: float | None = Field(
        default=None,
        description="Every non-null value is at least this (inclusive). Numeric columns only (not allowed "
        "on a categorical feature).",
        examples=[0],
    )
    max: float | None = Field(
        default=None,
        description="Every non-null value is at most this (inclusive); not below `min`. Numeric columns only.",
        examples=[600],
    )
    allowed: list[str | int | float | bool] | None = Field(
        default=None,
        description="Every non-null value is one of these (any column; at least one value). On a categorical "
        'feature the values compare in their canonical text (`3`, `3.0` and `"3"` are one value; see '
        '[features](#features)). Quote strings that YAML would read as booleans: `["yes", "no"]`; unquoted '
        "they become `true`/`false`.",
        examples=[["month-to-month", "one_year", "two_year"]],
    )
    max_null_fraction: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="At most this share of the rows may be null. **Replaces** the no-null rule of "
        "`nullable: false`, and adds one to a `nullable: true` column; `1`: no null check at all, `0`: no "
        "nulls. Not on the target (only `0` or null there): rows without a label cannot be trained on.",
        examples=[0.02],
    )

    @model_validator(mode="after")
    def _ordered(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.allowed is not None and not self.allowed:
            raise ValueError("allowed must list at least one value")
        return self


class RowCount(_Strict):
    """Bounds on the number of rows of a batch, always checked (by default: at least 50 rows).

    A file with a header but no rows, or an empty file, is rejected anyway (as unreadable), even with
    `min: 0`.
    """

    min: int = Field(
        default=50,
        ge=0,
        description="Fewest rows a batch may have. The default, 50, refuses a truncated export or a few rows "
        "that would train and gate a model on noise (a 20 % holdout of 50 rows is 10 rows); set your own.",
        examples=[1000],
    )
    max: int | None = Field(
        default=None,
        ge=1,
        description="Most rows a batch may have; null: no maximum. Not below `min`.",
        examples=[2000000],
    )

    @model_validator(mode="after")
    def _ordered(self) -> RowCount:
        if self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Expectations(_Strict):
    """Rules every batch must meet, on top of those derived from `features` and `target`.

    The `validate` task checks them with Great Expectations before anything learns from the batch; a batch
    that breaks one is quarantined and the run fails (see
    [Data validation](#data-validation-derived-and-explicit-expectations)). Without `columns` rules, the
    first accepted batch becomes a [baseline](#the-baseline-protection-without-writing-expectations) that
    later batches are checked against; `mlops config infer <batch>` proposes rules to review and commit.
    """

    row_count: RowCount = Field(
        default=RowCount(),
        description="Bounds on the number of rows.",
        examples=[{"min": 1000, "max": 2000000}],
    )
    columns: dict[str, ColumnRule] = Field(
        default={},
        description="Extra rules per column, by column name. The keys must be declared columns (a feature "
        "or the target).",
        examples=[
            {
                "tenure_months": {"min": 0, "max": 600},
                "total_charges": {"min": 0, "max_null_fraction": 0.02},
                "contract": {"allowed": ["month-to-month", "one_year", "two_year"]},
                "region": {"allowed": ["north", "south", "east", "west"], "max_null_fraction": 0.1},
                "churned": {"allowed": [0, 1]},
            }
        ],
    )
    baseline: Literal["warn", "fail", "off"] = Field(
        default="warn",
        description="With no `columns` rules: `warn` flags a batch that breaks the baseline (accepted, with "
        "warnings in the report, the task log and the task's result), `fail` quarantines it, `off` records "
        "none. `warn` by default: nobody reviewed these rules, and a real change (a new code, drift, the "
        "retraining batch) must not stop the pipeline on a guess. [Why](#what-a-minimal-config-protects-against).",
        examples=["fail"],
    )


class ModelSpec(_Strict):
    """The estimator: the model pipeline's last step, after the preprocessing derived from the feature types.

    The fitted pipeline (preprocessing and estimator) is what is logged to MLflow and registered.
    """

    estimator: str = Field(
        description="Import path `package.module.ClassName` of a scikit-learn compatible estimator class "
        "that can be built without arguments: a classifier for `task: classification`, a regressor for "
        "`task: regression` (checked by `mlops config check` and the `train` task, not at DAG parse). The "
        "probability metrics (`roc_auc`, `average_precision`, `log_loss`) need `predict_proba` (not "
        "`LinearSVC`, nor `SVC` without `probability: true`).",
        examples=["sklearn.ensemble.RandomForestClassifier", "sklearn.linear_model.Ridge"],
    )
    params: dict[str, Any] = Field(
        default={},
        description="Constructor keyword arguments: `Estimator(**params)`; default: the estimator's own "
        "defaults. `mlops config check` checks the names; scikit-learn checks the values when the model is "
        "fitted (a bad value fails `train`). Logged as run params `model.<param>`. The estimator's "
        "randomness is set here (usually `random_state`), not by `split.seed`.",
        examples=[
            {"n_estimators": 200, "min_samples_leaf": 3, "class_weight": "balanced", "random_state": 0}
        ],
    )

    @field_validator("estimator")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not ESTIMATOR_PATTERN.match(value):
            raise ValueError(
                f"'{value}' is not an import path like 'sklearn.linear_model.LogisticRegression'"
            )
        if not settings.estimator_allowed(value):  # on the string: nothing is imported for a refused path
            raise ValueError(
                f"'{value}' is not in an allowed estimator module ({', '.join(settings.estimator_modules())}); "
                "the operator adds a module prefix with MLOPS_ESTIMATOR_MODULES"
            )
        return value


class Split(_Strict):
    """How each batch is split into training rows and the *holdout* the gate scores models on.

    Each batch is split **on its own**, with the same seed, so a batch's holdout rows are the same in every
    run and never end up in a later model's training data: that lets the gate compare a new model with the
    champion fairly. Changing `seed`, `holdout_fraction` or `stratify` changes the split: the next
    challenger's holdout may then hold rows the champion trained on, which flatters the champion once.
    """

    holdout_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Share of each batch's rows kept out of training."
    )
    seed: int = Field(
        default=42, description="Random seed of the split. Logged as param `seed` and tag `mlops.seed`."
    )
    stratify: bool = Field(
        default=True,
        description="Classification: keep each class's share in the holdout. Ignored for regression, and "
        "skipped for a batch with a single class or a class with fewer than 2 rows.",
    )


class Training(_Strict):
    """Which data a run trains on.

    Quarantined batches are never used. The batches used are recorded on the MLflow run
    (`data/snapshot.json`, tags `mlops.n_batches`, `mlops.data_hash`, `mlops.training_window`).
    """

    window: Literal["all", "latest"] = Field(
        default="all",
        description="`all`: every accepted batch of the pipeline so far, up to and including the run's, "
        "oldest first; each is split on its own and the training parts and the holdouts are stacked, so the "
        "holdout grows with the history. `latest`: only the run's own batch.",
        examples=["latest"],
    )


class MetricRule(_Strict):
    """A rule on another metric, which must pass too.

    A rule with neither `threshold` nor `max_regression` only requires the metric to be computable.
    """

    metric: str = Field(
        description="A metric of the task (see [Metrics](#metrics-and-their-direction)).", examples=["recall"]
    )
    threshold: float | None = Field(
        default=None,
        description="Worst acceptable value: a minimum, or a maximum for lower-is-better metrics. null: none.",
        examples=[0.5],
    )
    max_regression: float | None = Field(
        default=None,
        ge=0.0,
        description="Largest allowed worsening against the champion, in metric units. Unlike the primary "
        "metric's, the default (null) is **no comparison**.",
        examples=[0.05],
    )


class SliceRule(_Strict):
    """A slice gate: a metric per value of a categorical feature, or per bin of a numeric one.

    The slices are scored on the same holdout as the whole model. A rejection names the slice
    (`recall 0.6200 below the minimum 0.7 on slice card_present=no (n=83)`). Slices with fewer than
    `min_rows` holdout rows, or with one class only for a metric that needs two, are reported, not gated; a
    slice rule with neither `threshold` nor `max_regression` is only reported (gate report and model card).
    More in [governance.md](governance.md#slice-and-fairness-gates).
    """

    feature: str = Field(
        min_length=1,
        description="A declared feature. A numeric one needs `bins`; a categorical one takes `values`.",
        examples=["card_present"],
    )
    values: list[str | int | float | bool] | None = Field(
        default=None,
        description="Categorical feature: the values to gate on, at least one (default: every value in the "
        "holdout).",
        examples=[["yes", "no"]],
    )
    bins: list[float] | None = Field(
        default=None,
        description="Numeric feature (required there, not allowed on a categorical one): at least two strictly "
        "ascending edges; `[0, 50, 500]` makes the slices `[0, 50)` and `[50, 500]`.",
        examples=[[0, 50, 500, 50000]],
    )
    metric: str | None = Field(
        default=None, description="A metric of the task; default: `gate.primary_metric`.", examples=["recall"]
    )
    threshold: float | None = Field(
        default=None,
        description="Worst acceptable value on every slice (a minimum, or a maximum for lower-is-better "
        "metrics); null: not gated on a threshold.",
        examples=[0.6],
    )
    max_regression: float | None = Field(
        default=None,
        ge=0.0,
        description="Largest allowed worsening against the champion on the same slice; null: no comparison.",
    )
    min_rows: int = Field(
        default=20, ge=1, description="Slices with fewer holdout rows are reported but not gated."
    )

    @model_validator(mode="after")
    def _values_or_bins(self) -> SliceRule:
        if self.values is not None and self.bins is not None:
            raise ValueError("give 'values' (categorical feature) or 'bins' (numeric feature), not both")
        if self.values is not None and not self.values:
            raise ValueError("values must list at least one value")
        if self.bins is not None and (
            len(self.bins) < 2 or any(b >= a for a, b in zip(self.bins[1:], self.bins, strict=False))
        ):
            raise ValueError(f"bins must be at least two strictly ascending edges (got {self.bins})")
        return self


class Fairness(_Strict):
    """The largest allowed gap of a metric between the slices of a feature.

    Needs at least one slice in `gate.slices`.
    """

    metric: str | None = Field(
        default=None,
        description="A metric of the task; default: `gate.primary_metric`.",
        examples=["roc_auc"],
    )
    max_gap: float = Field(
        ge=0.0, description="Largest allowed difference between the best and worst slice.", examples=[0.1]
    )
    features: list[str] | None = Field(
        default=None,
        description="Features of `gate.slices` it applies to (default: every feature in `gate.slices`).",
    )


class Gate(_Strict):
    """The quality gate: whether a newly trained model (the challenger) may replace the champion.

    The challenger and the champion are scored on the same holdout; every check must pass. The first model,
    with no champion yet, faces the thresholds only. A rejection is a normal outcome: the champion stays, the
    DAG run succeeds, and the `rejected` alert is sent. See [How the gate decides](#how-the-gate-decides).
    """

    primary_metric: str = Field(
        description="The metric `threshold` and `max_regression` apply to, a metric of the task: "
        f"classification {_METRIC_LIST['classification']}; regression {_METRIC_LIST['regression']} (see "
        "[Metrics](#metrics-and-their-direction)). Also shown in the DAG docs and recorded on the model "
        "version (tag `gate.primary_metric`). `roc_auc`, `average_precision` and `log_loss` need an "
        "estimator with `predict_proba`.",
        examples=["roc_auc", "rmse"],
    )
    threshold: float = Field(
        description="Worst acceptable primary metric on the holdout: a minimum, or a maximum for "
        "lower-is-better metrics (`log_loss`, `rmse`, `mae`, `mape`). Every model, the first one included, "
        "must meet it.",
        examples=[0.75],
    )
    max_regression: float = Field(
        default=0.0,
        ge=0.0,
        description="How much worse than the champion the challenger may be on the primary metric, in the "
        "metric's own units (`0.02` = 0.02 ROC AUC), both scored on the same holdout. `0`: not worse at "
        "all, which rejects a model that is worse by noise only; a small tolerance is usually wiser.",
        examples=[0.01],
    )
    secondary: list[MetricRule] = Field(
        default=[],
        description="Rules on other metrics; every one must pass too.",
        examples=[
            [
                {"metric": "recall", "threshold": 0.5},
                {"metric": "log_loss", "threshold": 0.6, "max_regression": 0.05},
            ]
        ],
    )
    slices: list[SliceRule] = Field(
        default=[],
        description="Slice gates: the gate's metrics per value or bin of a feature (default: none).",
        examples=[
            [
                {"feature": "card_present", "threshold": 0.8},
                {
                    "feature": "amount",
                    "bins": [0, 50, 500, 50000],
                    "metric": "recall",
                    "threshold": 0.6,
                    "min_rows": 30,
                },
            ]
        ],
    )
    fairness: Fairness | None = Field(
        default=None,
        description="A bound on the gap of a metric between the slices of a feature (default: none).",
        examples=[{"metric": "roc_auc", "max_gap": 0.1}],
    )


class AlertRoute(_Strict):
    """Where the pipeline's events are sent: one route. Each event goes to every route that subscribes to it.

    Define the connections in Airflow (UI, CLI, or an `AIRFLOW_CONN_<CONN_ID>` environment variable); an
    email's sender is the connection's `from_email` extra, else Airflow's `[email] from_email`. A route whose
    connection is not defined, or whose delivery fails, never fails the task: the whole alert is written to
    the task log (WARNING) instead, and the other routes are still tried. The events:
    [Alert events](#alert-events).
    """

    channel: Literal["slack", "email"] = Field(description="How to send.", examples=["slack"])
    conn_id: str = Field(
        min_length=1,
        description="Airflow connection id: a Slack **incoming webhook** connection (type `slackwebhook`) "
        "for `slack`, an SMTP connection (type `smtp`) for `email`.",
        examples=["slack_retention"],
    )
    to: list[str] = Field(
        default=[],
        description="Recipients. Required (at least one) for `email`; not allowed for `slack`, which posts to "
        "its webhook.",
        examples=[["retention-ml@example.com"]],
    )
    events: list[AlertEvent] = Field(
        default=["failure", "rejected", "drift", "data_warning"],
        description="The events this route receives. `promoted` is sent only where listed; `approval` goes to "
        "every route when no route lists it.",
        examples=[["failure", "rejected", "promoted"]],
    )

    @model_validator(mode="after")
    def _recipients(self) -> AlertRoute:
        if self.channel == "email" and not self.to:
            raise ValueError("an email route needs at least one address in 'to'")
        if self.channel == "slack" and self.to:
            raise ValueError("'to' is for email routes; a Slack route posts to its webhook connection")
        return self


class AirflowSettings(_Strict):
    """Settings of the generated DAGs. Every field is optional.

    Airflow refuses some values when it parses the DAGs, which could stop every pipeline's DAGs from loading;
    the schema checks them in advance, so they break only their own file (see
    [Limits Airflow sets](#limits-airflow-sets-checked-in-advance)).
    """

    owner: str = Field(
        default="mlops",
        description="The tasks' owner (shown in the Airflow UI and `airflow dags list`).",
        examples=["retention-ml"],
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of every task after a failure. A batch rejected by validation, a failed smoke "
        "test or canary/shadow phase and a promotion conflict fail at once (retrying cannot help).",
        examples=[3],
    )
    retry_delay_seconds: int = Field(
        default=60,
        ge=0,
        description="Delay before the first retry; later retries back off exponentially, up to 30 minutes.",
        examples=[120],
    )
    max_active_runs: int = Field(
        default=2,
        ge=1,
        description="Runs of the DAG allowed at the same time: with 2, a manual run never queues behind a "
        'scheduled run waiting for its batch. Must be 1 with `schedule: "@continuous"` (its default then).',
    )
    start_date: str = Field(
        default="2026-01-01",
        description="First date the schedule counts from (midnight UTC), a real date `YYYY-MM-DD` "
        '(`"2026-13-45"` is an error). Quote it: unquoted, YAML reads a date and the field rejects it.',
        examples=["2026-03-02"],
    )
    catchup: bool = Field(
        default=False,
        description="With a schedule: `true` creates a run for every missed interval since `start_date` "
        "(each reads the batch of its own `{ds}`); `false` runs only the latest.",
    )

    @field_validator("start_date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        from datetime import date

        try:
            if not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
                raise ValueError
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a date like 2026-01-01") from None
        return value


class PipelineConfig(_Strict):
    """One pipeline: its data, model, checks, gate, schedule and alert routes.

    The top level of a pipeline file `include/pipelines/<name>.yaml`. Only `name`, `task`, `data`,
    `target`, `features`, `model` and `gate` are required; everything else has a default.
    """

    name: Annotated[
        str,
        Field(
            pattern=NAME_PATTERN,
            description="Identifies the pipeline everywhere: the DAGs `<name>_training`, `<name>_rollback` "
            "and `<name>_monitoring`, the MLflow experiment and registered model `<name>`, the data-store "
            "folder `<store>/<name>/` and the expectation suite `<name>_batch`. Must equal the file name "
            "without `.yaml`/`.yml`. A lower-case letter, then lower-case letters, digits and underscores, 64 "
            "characters at most. Renaming a pipeline starts a new model history.",
            examples=["customer_churn"],
        ),
    ]
    description: str = Field(
        default="",
        description="Shown at the top of the DAG's documentation in the Airflow UI, and the description of "
        "the MLflow registered model when it is first created.",
        examples=["Predicts which subscribers cancel within 30 days. Positive class: churned = 1."],
    )
    intended_use: str = Field(
        default="",
        description="What the model is for and what it is not for, for the model card. Documentation only: "
        "training, the gate and deployment do not read it; each version's "
        "[model card](governance.md#model-cards) shows the text of the config it was trained with.",
        examples=[
            "Ranking active consumer subscribers by churn risk for the weekly retention call list. Not for "
            "pricing, credit or any decision about an individual made without a person in the loop."
        ],
    )
    limitations: list[str] = Field(
        default=[],
        description="The model's known limitations, one per item, for the model card. Documentation only.",
        examples=[
            [
                "Trained on consumer subscriptions only; business accounts were never in the data.",
                "Subscribers in their first month have no total_charges and are scored less reliably.",
            ]
        ],
    )
    task: Task = Field(
        description="Chooses the metrics the gate may use, whether `model.estimator` must be a classifier or "
        "a regressor, whether `split.stratify` applies (classification only) and whether the target must be "
        "numeric (regression only).",
        examples=["classification"],
    )
    data: DataSource = Field(description="Where a run reads its batch.")
    target: str = Field(
        min_length=1,
        description="The column to predict; not also a feature. It must exist and hold no nulls, and for "
        "`task: regression` have a numeric dtype; a classification target's labels are not restricted unless "
        "listed in `expectations.columns.<target>.allowed`. Binary classification: precision, recall, f1 and "
        "average precision are about the *positive class*, the **last label in sorted order** (`1` of "
        '`0/1`, `"yes"` of `"no"/"yes"`, but `"legit"` of `"fraud"/"legit"`): encode the target so that the '
        "class you care about sorts last, ideally `1` of `0/1`.",
        examples=["churned"],
    )
    features: list[Feature] = Field(
        min_length=1,
        description="The model's input columns, at least one. Columns of the batch that are neither listed "
        "nor the target are ignored: neither checked nor used.",
        examples=[
            [
                {
                    "name": "tenure_months",
                    "type": "numeric",
                    "description": "months since the subscription started",
                },
                {"name": "total_charges", "type": "numeric", "nullable": True},
                {"name": "contract", "type": "categorical"},
                {"name": "region", "type": "categorical", "nullable": True},
            ]
        ],
    )
    model: ModelSpec = Field(
        description="The estimator and its parameters.",
        examples=[
            {
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "params": {
                    "n_estimators": 200,
                    "min_samples_leaf": 3,
                    "class_weight": "balanced",
                    "n_jobs": 1,
                    "random_state": 0,
                },
            }
        ],
    )
    split: Split = Field(
        default=Split(),
        description="How each batch is split into training rows and the holdout.",
        examples=[{"holdout_fraction": 0.25, "seed": 7, "stratify": True}],
    )
    training: Training = Field(default=Training(), description="Which data a run trains on.")
    expectations: Expectations = Field(
        default=Expectations(), description="Explicit rules every batch must meet."
    )
    gate: Gate = Field(
        description="The quality gate a challenger must pass.",
        examples=[
            {
                "primary_metric": "roc_auc",
                "threshold": 0.75,
                "max_regression": 0.01,
                "secondary": [{"metric": "recall", "threshold": 0.5}],
            }
        ],
    )
    schedule: str | None = Field(
        default=None,
        description="When the training DAG runs. null: only when triggered. A preset: "
        f"{', '.join(f'`{p}`' for p in sorted(CRON_PRESETS))}. Or a five-field cron expression in UTC (minute "
        'hour day-of-month month day-of-week: `"30 4 * * 1"` is Mondays at 04:30), validated with croniter, '
        'ranges included (`"99 99 * * *"` is an error). Quote it in YAML. A scheduled run reads '
        "`data.source` with `{ds}` set to its date. `@continuous` needs `airflow.max_active_runs: 1`.",
        examples=["0 3 * * *", "@daily"],
    )
    deploy: Deploy = Field(default=Deploy(), description="How a challenger that passed the gate is deployed.")
    serving: Serving = Field(default=Serving(), description="The pipeline's model server.")
    monitoring: Monitoring = Field(
        default=Monitoring(), description="The monitoring DAG and the retraining policy."
    )
    alerts: list[AlertRoute] = Field(
        default=[],
        description="Where the pipeline's events are sent. Default: none, alerts go to the task log only.",
        examples=[
            [
                {
                    "channel": "slack",
                    "conn_id": "slack_retention",
                    "events": ["failure", "rejected", "promoted"],
                },
                {
                    "channel": "email",
                    "conn_id": "smtp_default",
                    "to": ["retention-ml@example.com", "oncall@example.com"],
                },
            ]
        ],
    )
    airflow: AirflowSettings = Field(default=AirflowSettings(), description="Settings of the generated DAGs.")
    tags: list[str] = Field(
        default=[],
        description="Added to the DAGs' tags (after `mlops`, the DAG's kind and the pipeline name), to filter "
        "DAGs in the Airflow UI. At most 100 characters each (Airflow's limit).",
        examples=[["retention", "classification"]],
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        problems: list[str] = []
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"field 'features': duplicate names {duplicates}")
        if self.target in names:
            problems.append(f"field 'target': '{self.target}' is also listed as a feature")
        columns = set(names) | {self.target}
        types = {f.name: f.type for f in self.features}
        for column, rule in self.expectations.columns.items():
            if column not in columns:
                problems.append(
                    f"field 'expectations.columns.{column}': not a declared column; declared: {sorted(columns)}"
                )
            elif types.get(column) == "categorical" and (rule.min is not None or rule.max is not None):
                problems.append(
                    f"field 'expectations.columns.{column}': min/max apply to numeric columns only"
                )
        target_rule = self.expectations.columns.get(self.target)
        if target_rule is not None and target_rule.max_null_fraction:
            problems.append(
                f"field 'expectations.columns.{self.target}.max_null_fraction': the target may not be null "
                "(rows without a label cannot be trained on)"
            )
        for feature, test in self.monitoring.drift.features.items():
            if feature not in types:
                problems.append(
                    f"field 'monitoring.drift.features.{feature}': not a declared feature; declared: {names}"
                )
            elif test.method in (
                NUMERIC_ONLY_DRIFT_METHODS
                if types[feature] == "categorical"
                else CATEGORICAL_ONLY_DRIFT_METHODS
            ):
                problems.append(
                    f"field 'monitoring.drift.features.{feature}.method': '{test.method}' does not apply to "
                    f"the {types[feature]} feature '{feature}'"
                )
        drift = self.monitoring.drift
        if drift.categorical.method in NUMERIC_ONLY_DRIFT_METHODS:
            problems.append(
                f"field 'monitoring.drift.categorical.method': '{drift.categorical.method}' needs numeric values"
            )
        if drift.numeric.method in CATEGORICAL_ONLY_DRIFT_METHODS:
            problems.append(
                f"field 'monitoring.drift.numeric.method': '{drift.numeric.method}' needs categorical values"
            )
        long_tags = [t for t in self.tags if len(t) > 100]
        if long_tags:
            problems.append(f"field 'tags': tags are at most 100 characters; too long: {long_tags}")
        if self.schedule == "@continuous" and self.airflow.max_active_runs != 1:
            if "max_active_runs" in self.airflow.model_fields_set:
                problems.append("field 'airflow.max_active_runs': a '@continuous' schedule needs exactly 1")
            else:  # the default (2) is for cron schedules; a frozen model, hence object.__setattr__
                object.__setattr__(self, "airflow", self.airflow.model_copy(update={"max_active_runs": 1}))
        allowed_metrics = CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS
        for where, metric in [("gate.primary_metric", self.gate.primary_metric)] + [
            (f"gate.secondary.{i}.metric", rule.metric) for i, rule in enumerate(self.gate.secondary)
        ]:
            if metric not in allowed_metrics:
                problems.append(
                    f"field '{where}': '{metric}' is not a {self.task} metric; allowed: {', '.join(allowed_metrics)}"
                )
        problems += _slice_problems(self.gate, types, allowed_metrics, self.task)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # Derived values -------------------------------------------------------------------------------------
    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.type == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.type == "categorical"]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def training_dag_id(self) -> str:
        return f"{self.name}_training"

    @property
    def monitoring_dag_id(self) -> str:
        return f"{self.name}_monitoring"

    @property
    def server_url(self) -> str:
        """Where this pipeline's model server answers."""
        return (self.deploy.server_url or f"http://{self.serving.host}:{self.serving.port}").rstrip("/")

    @property
    def config_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _slice_problems(gate: Gate, types: Mapping[str, str], allowed: tuple[str, ...], task: str) -> list[str]:
    """Slice and fairness rules name declared features, suit their type and use metrics of the task."""
    problems: list[str] = []
    for i, rule in enumerate(gate.slices):
        where = f"gate.slices.{i}"
        kind = types.get(rule.feature)
        if kind is None:
            problems.append(f"field '{where}.feature': '{rule.feature}' is not a declared feature")
        elif kind == "numeric" and rule.bins is None:
            problems.append(f"field '{where}.bins': numeric feature '{rule.feature}' needs bin edges")
        elif kind == "categorical" and rule.bins is not None:
            problems.append(f"field '{where}.bins': '{rule.feature}' is categorical; list its 'values'")
        if rule.metric is not None and rule.metric not in allowed:
            problems.append(f"field '{where}.metric': '{rule.metric}' is not a {task} metric")
    if gate.fairness is not None:
        sliced = {rule.feature for rule in gate.slices}
        if not sliced:
            problems.append("field 'gate.fairness': needs at least one slice in gate.slices")
        for feature in gate.fairness.features or []:
            if feature not in sliced:
                problems.append(f"field 'gate.fairness.features': '{feature}' is not in gate.slices")
        if gate.fairness.metric is not None and gate.fairness.metric not in allowed:
            problems.append(f"field 'gate.fairness.metric': '{gate.fairness.metric}' is not a {task} metric")
    return problems


def describe_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as a line that names the field, what is wrong and what was given."""
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"field '{where}': unknown field (check the spelling against docs/pipeline-config.md)"
    if kind == "missing":
        return f"field '{where}': required field is missing"
    message = message.removeprefix("Value error, ")
    got = error.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"field '{where}': {message}{shown}"


def parse_config(data: Any, path: str = "<config>") -> PipelineConfig:
    """Validate an already-parsed YAML document; raise ConfigError naming the file and every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(path, [f"the file must hold a mapping of fields, not {type(data).__name__}"])
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        for error in exc.errors():
            # Cross-field problems come one per line from one validator: list them one by one.
            if error["type"] == "value_error" and not error["loc"]:
                problems.extend(error["msg"].removeprefix("Value error, ").splitlines())
            else:
                problems.append(describe_error(error))
        raise ConfigError(path, problems) from None
    stem = Path(path).stem
    if path != "<config>" and stem != config.name:
        raise ConfigError(path, [f"field 'name': '{config.name}' must match the file name '{stem}.yaml'"])
    return config


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate one pipeline YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)  # a safe loader (libyaml when available)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"not valid YAML: {where}{problem}"]) from None
    return parse_config(data, str(path))


def load_all(directory: str | Path) -> tuple[dict[str, PipelineConfig], dict[str, ConfigError]]:
    """Load every ``*.yaml``/``*.yml`` in a folder: (valid configs by name, errors by file path).

    Both DAG files of a parse ask for the same folder: the result is reused while no file in it changed.
    """
    paths = sorted(Path(directory).glob("*.y*ml"))
    fingerprint = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    cached = _LOADED.get(str(directory))
    if cached is not None and cached[0] == fingerprint:
        return dict(cached[1]), dict(cached[2])
    configs, errors = _load_files(paths)
    _LOADED[str(directory)] = (fingerprint, configs, errors)
    return dict(configs), dict(errors)


_LOADED: dict[str, tuple[tuple[Any, ...], dict[str, PipelineConfig], dict[str, ConfigError]]] = {}


def _load_files(paths: list[Path]) -> tuple[dict[str, PipelineConfig], dict[str, ConfigError]]:
    configs: dict[str, PipelineConfig] = {}
    errors: dict[str, ConfigError] = {}
    for path in paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            errors[str(path)] = exc
            continue
        if config.name in configs:
            errors[str(path)] = ConfigError(
                str(path), [f"field 'name': another file already declares pipeline '{config.name}'"]
            )
            continue
        configs[config.name] = config
    return configs, errors


def check_config_deep(config: PipelineConfig) -> list[str]:
    """Checks that need scikit-learn: the estimator imports, suits the task and accepts its params.

    Not run at DAG parse time (too heavy); run by ``mlops config check`` and before training.
    """
    import importlib

    from sklearn.base import is_classifier, is_regressor

    module_name, _, class_name = config.model.estimator.rpartition(".")
    if not settings.estimator_allowed(config.model.estimator):  # a config built without validation
        return [f"field 'model.estimator': '{config.model.estimator}' is not in an allowed estimator module"]
    try:
        estimator_cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        return [f"field 'model.estimator': cannot import '{config.model.estimator}' ({exc})"]
    if not (isinstance(estimator_cls, type) and hasattr(estimator_cls, "get_params")):
        return [f"field 'model.estimator': {config.model.estimator} is not a scikit-learn estimator class"]
    try:
        estimator = estimator_cls()
        estimator.set_params(**config.model.params)
    except (TypeError, ValueError) as exc:
        # scikit-learn's own message already lists the valid parameters.
        return [f"field 'model.params': {exc}"]
    if config.task == "classification" and not is_classifier(estimator):
        return [
            f"field 'model.estimator': {config.model.estimator} is not a classifier (task: classification)"
        ]
    if config.task == "regression" and not is_regressor(estimator):
        return [f"field 'model.estimator': {config.model.estimator} is not a regressor (task: regression)"]
    needs_proba = sorted(
        {config.gate.primary_metric, *(rule.metric for rule in config.gate.secondary)} & PROBABILITY_METRICS
    )
    if needs_proba and not hasattr(estimator, "predict_proba"):
        return [
            f"field 'gate': {', '.join(needs_proba)} need predicted probabilities, and "
            f"{config.model.estimator} (with these params) has no predict_proba"
        ]
    return []


def features_fingerprint(config: PipelineConfig) -> str:
    """A short hash of the feature set: names and types, order-free."""
    described = sorted(f"{f.name}:{f.type}" for f in config.features)
    return hashlib.sha256(",".join(described).encode()).hexdigest()[:16]
