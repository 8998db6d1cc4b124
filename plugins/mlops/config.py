"""The pipeline config: one YAML file per pipeline in ``include/pipelines/``.

The schema is typed (pydantic). Errors name the file, the field and what is allowed, so that a broken file
breaks only its own pipeline and says why. This module is imported at DAG parse time: it must stay light
(no pandas, sklearn, mlflow).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops.errors import ConfigError

#: libyaml's safe loader parses ~8x faster than the pure-Python one; DAG files parse configs constantly.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
ESTIMATOR_PATTERN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
CRON_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}

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
AlertEvent = Literal["failure", "rejected", "promoted", "drift", "approval"]


def check_schedule(value: str | None) -> str | None:
    """``value`` if it is null, a preset or a five-field cron expression; else a readable ValueError."""
    if value is None or value in CRON_PRESETS:
        return value
    from croniter import croniter

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"'{value}' is not a schedule: use null, a preset ({', '.join(sorted(CRON_PRESETS))}) "
            "or a five-field cron expression like '0 3 * * *'"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Strict):
    """Where batches come from when a run is not given a ``data_uri``."""

    source: str = Field(
        description="A path, file:// or s3:// URI of a CSV or Parquet batch. `{ds}` and `{ds_nodash}` are "
        "replaced by the run's date; a relative path is relative to MLOPS_HOME."
    )
    format: Literal["auto", "csv", "parquet"] = "auto"

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in ("", "file", "s3"):
            raise ValueError(f"scheme '{scheme}://' is not supported; use a path, file:// or s3://")
        return value


class Feature(_Strict):
    name: str = Field(min_length=1)
    type: Literal["numeric", "categorical"]
    nullable: bool = False
    description: str = ""


class ColumnRule(_Strict):
    """Explicit expectations on one column, on top of those derived from the declared schema."""

    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None
    max_null_fraction: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.allowed is not None and not self.allowed:
            raise ValueError("allowed must list at least one value")
        return self


class RowCount(_Strict):
    min: int = Field(default=1, ge=0)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> RowCount:
        if self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Expectations(_Strict):
    row_count: RowCount = RowCount()
    columns: dict[str, ColumnRule] = {}


class ModelSpec(_Strict):
    estimator: str = Field(description="Import path of a scikit-learn compatible estimator class.")
    params: dict[str, Any] = {}

    @field_validator("estimator")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not ESTIMATOR_PATTERN.match(value):
            raise ValueError(
                f"'{value}' is not an import path like 'sklearn.linear_model.LogisticRegression'"
            )
        return value


class Split(_Strict):
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: int = 42
    stratify: bool = Field(
        default=True, description="Keep class shares in the holdout (classification only)."
    )


class Training(_Strict):
    window: Literal["all", "latest"] = Field(
        default="all",
        description="'all': every accepted batch of the pipeline so far; 'latest': only the run's batch.",
    )


class MetricRule(_Strict):
    metric: str
    threshold: float | None = Field(
        default=None,
        description="Worst acceptable value: a minimum, or a maximum for lower-is-better metrics.",
    )
    max_regression: float | None = Field(
        default=None, ge=0.0, description="Largest allowed worsening against the champion, in metric units."
    )


class SliceRule(_Strict):
    """A slice gate: a metric per value of a categorical feature, or per bin of a numeric one."""

    feature: str = Field(min_length=1, description="A declared feature.")
    values: list[str | int | float | bool] | None = Field(
        default=None, description="Categorical feature: the values to gate on (default: every value seen)."
    )
    bins: list[float] | None = Field(
        default=None,
        description="Numeric feature: bin edges, ascending; slices are [e0, e1), ..., [e(n-1), en].",
    )
    metric: str | None = Field(default=None, description="Default: the gate's primary metric.")
    threshold: float | None = Field(
        default=None, description="Worst acceptable value on every slice (a minimum, or a maximum)."
    )
    max_regression: float | None = Field(
        default=None, ge=0.0, description="Largest allowed worsening against the champion on the same slice."
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
    """The largest allowed gap of a metric between the slices of a feature."""

    metric: str | None = Field(default=None, description="Default: the gate's primary metric.")
    max_gap: float = Field(ge=0.0, description="Largest allowed difference between the best and worst slice.")
    features: list[str] | None = Field(
        default=None, description="Slice features it applies to (default: every feature in gate.slices)."
    )


class Gate(_Strict):
    primary_metric: str
    threshold: float = Field(
        description="Worst acceptable primary metric: a minimum, or a maximum for lower-is-better metrics. "
        "Every model, the first one included, must meet it."
    )
    max_regression: float = Field(default=0.0, ge=0.0)
    secondary: list[MetricRule] = []
    slices: list[SliceRule] = []
    fairness: Fairness | None = None


class AlertRoute(_Strict):
    channel: Literal["slack", "email"]
    conn_id: str = Field(min_length=1, description="Airflow connection id (slackwebhook or smtp).")
    to: list[str] = []
    events: list[AlertEvent] = ["failure", "rejected", "drift"]

    @model_validator(mode="after")
    def _recipients(self) -> AlertRoute:
        if self.channel == "email" and not self.to:
            raise ValueError("an email route needs at least one address in 'to'")
        if self.channel == "slack" and self.to:
            raise ValueError("'to' is for email routes; a Slack route posts to its webhook connection")
        return self


class SmokeTest(_Strict):
    """Load the challenger in a separate process and predict before it may serve (TFX's InfraValidator idea)."""

    enabled: bool = True
    sample_rows: int = Field(default=100, ge=1, description="Holdout rows predicted in one call.")
    latency_budget_ms: float = Field(default=1000.0, gt=0, description="Largest time for that call.")
    timeout_seconds: float = Field(default=180.0, gt=0, description="Largest time to load and predict.")


class Canary(_Strict):
    """Guard rails of a canary (or shadow) phase, read from the model server's live statistics."""

    traffic_share: float = Field(default=0.1, gt=0.0, lt=1.0, description="Share of live requests (canary).")
    min_requests: int = Field(default=100, ge=1, description="Requests the challenger must see to decide.")
    max_duration_seconds: float = Field(default=600.0, gt=0, description="Decide (or roll back) by then.")
    max_error_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    max_p99_latency_ms: float = Field(default=250.0, gt=0)
    max_prediction_shift: float = Field(
        default=0.2,
        ge=0.0,
        description="Largest distance between challenger and champion predictions: total variation of the "
        "predicted classes, or the shift of the mean prediction in champion standard deviations.",
    )


class Approval(_Strict):
    """A person approves (or rejects) a challenger that passed the gate before it is deployed."""

    required: bool = False
    timeout_minutes: float = Field(
        default=1440.0, gt=0, description="No answer by then counts as a rejection."
    )
    assigned_users: list[str] = Field(
        default=[], description="Airflow user names who may answer (default: anyone allowed on the DAG)."
    )


class Deploy(_Strict):
    strategy: Literal["direct", "canary", "shadow"] = "direct"
    approval: Approval = Approval()
    smoke_test: SmokeTest = SmokeTest()
    canary: Canary = Canary()
    server_url: str | None = Field(
        default=None, description="The pipeline's model server (canary, shadow); default from `serving`."
    )


class InferenceLogSettings(_Strict):
    uri: str | None = Field(
        default=None, description="Folder or s3:// prefix; default <store>/<name>/inference."
    )
    flush_rows: int = Field(default=1000, ge=1)
    flush_seconds: float = Field(default=5.0, gt=0)
    max_buffered_rows: int = Field(
        default=100_000, ge=1, description="Past this, requests get 503, not lost."
    )


class Serving(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    poll_interval_seconds: float = Field(default=10.0, gt=0, description="How often the aliases are checked.")
    max_batch_rows: int = Field(default=1000, ge=1, description="Largest batch one request may send.")
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    batch_wait_ms: float = Field(default=2.0, ge=0, description="How long to gather concurrent requests.")
    inference_log: InferenceLogSettings = InferenceLogSettings()


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
    """How one column's drift is measured (an Evidently stat test) and where it counts as drift."""

    method: DriftMethod
    threshold: float = Field(
        gt=0.0, description="Distance at or above which, or p-value below which, a column drifts."
    )


class Drift(_Strict):
    """Per-feature drift tests. The defaults are effect sizes, so large windows do not fire on negligible shifts."""

    numeric: DriftTest = DriftTest(method="wasserstein", threshold=0.1)
    categorical: DriftTest = DriftTest(method="jensenshannon", threshold=0.1)
    features: dict[str, DriftTest] = Field(default={}, description="Per-feature overrides, by feature name.")
    prediction: DriftTest | None = Field(
        default=None, description="Prediction drift test; default: the numeric or categorical test by task."
    )
    share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="A window drifts when at least this share of features drifts.",
    )


class Performance(_Strict):
    """Live quality from feedback labels, against the champion's holdout metrics."""

    max_drop: float = Field(
        default=0.05, ge=0.0, description="Largest worsening of the primary metric, in metric units."
    )
    min_labels: int = Field(default=100, ge=1, description="Labelled rows needed to score a window.")


class RetrainPolicy(_Strict):
    """When a drifted window becomes a retraining, and on which data."""

    enabled: bool = True
    consecutive_windows: int = Field(
        default=2, ge=1, description="Drifted windows in a row before retraining."
    )
    cooldown_hours: float = Field(default=24.0, ge=0.0, description="No new retraining this soon after one.")
    min_new_labels: int = Field(
        default=200, ge=0, description="Labelled live rows since the last training needed to retrain."
    )
    max_per_day: int = Field(default=2, ge=1, description="Retrainings per UTC day at most.")
    data: Literal["recent", "sliding", "all"] = Field(
        default="recent",
        description="'recent': labelled rows of the drifted windows; 'sliding': labelled rows of the last "
        "sliding_days; 'all': every accepted batch plus those rows.",
    )
    sliding_days: float = Field(default=7.0, gt=0.0)


class Monitoring(_Strict):
    """The ``<name>_monitoring`` DAG: drift, data quality and live performance per window of the inference log."""

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    enabled: bool = True
    schedule: str | None = Field(
        default=None,
        description="When to monitor (the window is the run's data interval); null: by hand only.",
    )
    min_rows: int = Field(default=50, ge=1, description="Fewer rows in the window: status 'no_data'.")
    reference_rows: int = Field(
        default=100_000, ge=100, description="Training rows kept as the reference profile (a seeded sample)."
    )
    report_rows: int = Field(
        default=10_000, ge=100, description="Rows per side that the HTML report draws (a seeded sample)."
    )
    drift: Drift = Drift()
    performance: Performance = Performance()
    retrain: RetrainPolicy = RetrainPolicy()


class AirflowSettings(_Strict):
    owner: str = "mlops"
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_seconds: int = Field(default=60, ge=0)
    max_active_runs: int = Field(default=1, ge=1)
    start_date: str = "2026-01-01"
    catchup: bool = False

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
    """One pipeline: its data, model, checks, gate, schedule and alert routes."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    intended_use: str = Field(default="", description="What the model is for and not for (model card).")
    limitations: list[str] = Field(default=[], description="Known limitations (model card).")
    task: Task
    data: DataSource
    target: str = Field(min_length=1)
    features: list[Feature] = Field(min_length=1)
    model: ModelSpec
    split: Split = Split()
    training: Training = Training()
    expectations: Expectations = Expectations()
    gate: Gate
    schedule: str | None = None
    deploy: Deploy = Deploy()
    serving: Serving = Serving()
    monitoring: Monitoring = Monitoring()
    alerts: list[AlertRoute] = []
    airflow: AirflowSettings = AirflowSettings()
    tags: list[str] = []

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
            problems.append("field 'airflow.max_active_runs': a '@continuous' schedule needs exactly 1")
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


def _slice_problems(gate: Gate, types: dict[str, str], allowed: tuple[str, ...], task: str) -> list[str]:
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


def _describe(error: dict[str, Any]) -> str:
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
                problems.append(_describe(error))
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


_LOADED: dict[str, tuple[tuple, dict[str, PipelineConfig], dict[str, ConfigError]]] = {}


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
