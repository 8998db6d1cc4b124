"""Train a scikit-learn pipeline on a pipeline's snapshot and track it in MLflow with its lineage.

The snapshot is the list of accepted batches the model learns from (every accepted batch so far, or only the
run's batch: ``training.window``). Each batch is split into train and holdout parts with the configured seed,
so the holdout of a new challenger never overlaps the training data of an earlier champion: the gate can score
both on it fairly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlops.config import (
    ModelSpec,
    PipelineConfig,
    check_config_deep,
    describe_error,
    features_fingerprint,
    settings,
)
from mlops.data import storage
from mlops.data.batches import Batch, accepted_batches
from mlops.data.canonical import canonical_frame, typed_features
from mlops.errors import ConfigError, ModelFitError, SchemaError, TrainingError
from mlops.ml import serialization, tracking

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

HOLDOUT_ARTIFACT = "data/holdout.parquet"
SNAPSHOT_ARTIFACT = "data/snapshot.json"
ENVIRONMENT_ARTIFACT = "environment/environment.json"
MODEL_NAME = "model"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    experiment_id: str
    model_uri: str
    metrics: dict[str, float]
    snapshot_hash: str
    batches: list[str]
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


#: Tag of a training run (and its version) whose last batch passed validation with warnings: what was seen.
VALIDATION_WARNINGS_TAG = "mlops.validation_warnings"
#: Tag of a training run and of its version: :func:`training_fingerprint`, to find a version by its inputs.
FINGERPRINT_TAG = "mlops.fingerprint"


def effective_config(config: PipelineConfig, model_override: dict[str, Any] | None) -> PipelineConfig:
    """The config with a run's model override applied (``{"estimator": ..., "params": {...}}``)."""
    if not model_override:
        return config
    unknown = set(model_override) - {"estimator", "params"}
    if unknown:
        raise ConfigError("run conf 'model'", [f"unknown keys {sorted(unknown)}; allowed: estimator, params"])
    try:
        # Another estimator starts from its own defaults: the recipe's params belong to the recipe's estimator.
        base = config.model.model_dump()
        if model_override.get("estimator", base["estimator"]) != base["estimator"]:
            base["params"] = {}
        spec = ModelSpec.model_validate({**base, **model_override})
    except ValidationError as exc:
        raise ConfigError("run conf 'model'", [describe_error(error) for error in exc.errors()]) from None
    return config.model_copy(update={"model": spec})


def default_seed(config: PipelineConfig) -> int | None:
    """The ``random_state`` an estimator gets when its recipe sets none: the split seed, so that a rebuild gives
    the same model. None when the estimator takes no ``random_state`` or the recipe sets one (``random_state:
    null`` included: an estimator left unseeded on purpose, recorded as such in the lineage)."""
    import importlib

    if "random_state" in config.model.params or not settings.estimator_allowed(config.model.estimator):
        return None
    module_name, _, class_name = config.model.estimator.rpartition(".")
    try:
        takes_seed = (
            "random_state" in getattr(importlib.import_module(module_name), class_name)().get_params()
        )
    except Exception:  # check_config_deep reports an unusable estimator with a better message
        return None
    return config.split.seed if takes_seed else None


def estimator_seed(config: PipelineConfig, *, seeded: bool = True) -> str:
    """The estimator's ``random_state`` as recorded in the lineage: a number, ``none`` (unseeded) or ``n/a``
    (the estimator takes none). ``seeded``: whether :func:`build_pipeline` applied :func:`default_seed`."""
    if "random_state" in config.model.params:
        value = config.model.params["random_state"]
        return "none" if value is None else str(value)
    seed = default_seed(config)
    if seed is None:
        return "n/a"
    return str(seed) if seeded else "none"


def build_pipeline(config: PipelineConfig, *, seeded: bool = True) -> Pipeline:
    """Preprocessing from the feature types, then the configured estimator, as one sklearn Pipeline.

    ``seeded``: give an estimator whose recipe sets no ``random_state`` the split seed (:func:`default_seed`).
    """
    import importlib

    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    problems = check_config_deep(config)
    if problems:
        raise ConfigError(f"pipeline '{config.name}'", problems)
    module_name, _, class_name = config.model.estimator.rpartition(".")
    try:
        estimator = getattr(importlib.import_module(module_name), class_name)(**config.model.params)
        if seeded and (seed := default_seed(config)) is not None:
            estimator.set_params(random_state=seed)
    except (TypeError, ValueError) as exc:  # a parameter the estimator does not take, or refuses
        raise ModelFitError(estimator_refused(config, exc, "cannot be built")) from exc
    transformers = []
    if config.numeric_features:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numeric, config.numeric_features))
    if config.categorical_features:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, config.categorical_features))
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("model", estimator)])


def prepare_frame(frame: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """The features in config order, in their canonical dtypes (:mod:`mlops.data.canonical`: numeric as
    float64, categorical as canonical text with NaN for missing), and the target."""
    out = typed_features(frame, config)
    out[config.target] = canonical_frame(frame[[config.target]], config)[config.target]
    return out


def snapshot_for(config: PipelineConfig, batch: Batch) -> list[Batch]:
    """The batches a model trained now learns from, oldest first."""
    if config.training.window == "latest":
        return [batch]
    known = [b for b in accepted_batches(config.name) if b.ingested_at <= batch.ingested_at]
    if batch.content_hash not in {b.content_hash for b in known}:
        known.append(batch)
    return known


def snapshot_hash(batches: list[Batch]) -> str:
    return hashlib.sha256(",".join(sorted(b.content_hash for b in batches)).encode()).hexdigest()


def training_inputs(config: PipelineConfig, batches: list[Batch], commit: str, dirty: bool) -> dict[str, Any]:
    """What a model trained now depends on: the data (the snapshot's batch hashes), the config parts that
    shape the model (task, target, features and types in order, the split), the recipe (override applied) and
    the code (package version, git commit). The gate, alerts, serving and texts change no model: left out."""
    from mlops import __version__

    return {
        "data": snapshot_hash(batches),
        "config": {
            "task": config.task,
            "target": config.target,
            "features": [[f.name, f.type] for f in config.features],
            "split": config.split.model_dump(mode="json"),
        },
        "recipe": {"estimator": config.model.estimator, "params": config.model.params},
        "code": {"package": __version__, "commit": commit, "dirty": dirty},
    }


def training_fingerprint(
    config: PipelineConfig, batches: list[Batch], code: tuple[str, bool] | None = None
) -> str:
    """The sha256 of :func:`training_inputs` (``code``: :func:`code_version`, read when not given): equal
    fingerprints, same model. Tagged on the run and its version (:data:`FINGERPRINT_TAG`)."""
    commit, dirty = code or code_version()
    inputs = training_inputs(config, batches, commit, dirty)
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def split_snapshot(config: PipelineConfig, batches: list[Batch]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): each batch split on its own with the configured seed, then stacked."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from mlops.data import validation

    trains, holdouts = [], []
    for batch in batches:
        with storage.local_file(batch.uri) as path:
            frame = prepare_frame(validation.read_batch(path, batch.format, config), config)
        stratify = None
        if config.task == "classification" and config.split.stratify:
            counts = frame[config.target].value_counts()
            if len(counts) > 1 and counts.min() >= 2:
                stratify = frame[config.target]
        train, holdout = train_test_split(
            frame, test_size=config.split.holdout_fraction, random_state=config.split.seed, stratify=stratify
        )
        trains.append(train)
        holdouts.append(holdout)
    return pd.concat(trains, ignore_index=True), pd.concat(holdouts, ignore_index=True)


def compute_metrics(config: PipelineConfig, model: Any, holdout: pd.DataFrame) -> dict[str, float]:
    """Every metric of the pipeline's task, on a holdout frame (features and target)."""
    import numpy as np
    from sklearn import metrics as skm

    x, y = holdout[config.feature_names], holdout[config.target]
    predicted = model.predict(x)
    if config.task == "regression":
        y_true = np.asarray(y, dtype=float)
        nonzero = np.abs(y_true) > 1e-9
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
            "mae": float(skm.mean_absolute_error(y_true, predicted)),
            "r2": float(skm.r2_score(y_true, predicted)),
            "mape": float(np.mean(np.abs((y_true[nonzero] - predicted[nonzero]) / y_true[nonzero])))
            if nonzero.any()
            else float("nan"),
        }
    classes = list(getattr(model, "classes_", np.unique(y)))
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    positive = classes[-1] if binary else None
    result = {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "precision": float(
            skm.precision_score(y, predicted, average=average, pos_label=positive, zero_division=0)
        ),
        "recall": float(skm.recall_score(y, predicted, average=average, pos_label=positive, zero_division=0)),
        "f1": float(skm.f1_score(y, predicted, average=average, pos_label=positive, zero_division=0)),
    }
    if hasattr(model, "predict_proba") and len(np.unique(y)) > 1:
        proba = model.predict_proba(x)
        if binary:
            result["roc_auc"] = float(skm.roc_auc_score(y, proba[:, 1]))
            result["average_precision"] = float(
                skm.average_precision_score(y, proba[:, 1], pos_label=positive)
            )
        else:
            result["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
        result["log_loss"] = float(skm.log_loss(y, proba, labels=classes))
    return result


def code_version() -> tuple[str, bool]:
    """(git commit, tree is dirty) of the checkout the code runs from, or ("unknown", False)."""
    root = settings.repo_root()
    if root is None:
        return "unknown", False
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return sha or "unknown", bool(dirty)


def environment() -> dict[str, Any]:
    """The Python version and the exact version of every installed distribution (lineage of a model)."""
    import platform
    from importlib.metadata import distributions

    packages = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": dict(sorted(packages.items())),
    }


def ensure_experiment(name: str) -> str:
    """The id of the experiment named ``name``, created (with our artifact root) if missing.

    The experiment is tagged ``mlflow.experimentKind: custom_model_development`` (MLflow 3's "machine learning"
    kind), at creation and, for an experiment made before, when it is next used: MLflow's UI lists an
    experiment under its ML or GenAI switch by this tag (docs/mlflow-ui.md).
    """
    from mlflow.exceptions import MlflowException

    kind_tag, kind = "mlflow.experimentKind", "custom_model_development"
    client = tracking.client()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if (experiment.tags or {}).get(kind_tag) != kind:  # read with the look-up: no extra call when set
            client.set_experiment_tag(experiment.experiment_id, kind_tag, kind)
        return experiment.experiment_id
    try:
        return client.create_experiment(
            name, artifact_location=storage.join(settings.artifact_root(), name), tags={kind_tag: kind}
        )
    except MlflowException:
        # Another run created it between our look-up and create: use theirs.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _pip_requirements(serializer: str) -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "scikit-learn", "pandas", "numpy", serializer)]


def train_model(
    config: PipelineConfig,
    batch: Batch,
    *,
    lineage: dict[str, str] | None = None,
    model_override: dict[str, Any] | None = None,
) -> TrainResult:
    """Fit the pipeline on the snapshot and log one MLflow run: params, metrics, model, data, lineage."""
    import yaml
    from mlflow.models import infer_signature

    config = effective_config(config, model_override)
    model = build_pipeline(config)
    batches = snapshot_for(config, batch)
    try:
        train, holdout = split_snapshot(config, batches)
    except KeyError as exc:  # an accepted batch of an earlier config lacks a column this config declares
        column = exc.args[0] if exc.args else exc
        what = "the target column" if column == config.target else "the column"
        raise SchemaError(
            f"pipeline '{config.name}': {what} {column!r} is missing from an accepted batch of the training "
            f"snapshot ({len(batches)} batches, training.window: {config.training.window}); a batch accepted "
            "under an earlier config? Train on this batch only (training.window: latest) or fix the config."
        ) from exc
    except (TypeError, ValueError) as exc:
        raise ModelFitError(
            f"pipeline '{config.name}': the training snapshot ({len(batches)} batches) cannot be prepared "
            f"or split into train and holdout: {exc}"
        ) from exc
    if train[config.target].nunique() < 2 and config.task == "classification":
        raise ModelFitError(
            f"pipeline '{config.name}': the training data has a single class "
            f"({config.target} = {train[config.target].iloc[0]!r} in all {len(train)} rows); cannot train a "
            "classifier. Add a batch with both classes."
        )

    mlflow = tracking.mlflow()
    experiment_id = ensure_experiment(config.name)
    commit, dirty = code_version()
    digest = snapshot_hash(batches)
    tags = {
        "mlops.pipeline": config.name,
        "mlops.data_hash": digest,
        "mlops.batch_hash": batch.content_hash,
        "mlops.batch_uri": batch.uri,
        "mlops.batch_source": batch.source,
        "mlops.config_hash": config.config_hash,
        "mlops.code_version": commit,
        "mlops.code_dirty": str(dirty).lower(),
        "mlops.seed": str(config.split.seed),
        "mlops.estimator_seed": estimator_seed(config),
        "mlops.estimator": config.model.estimator,
        "mlops.features_hash": features_fingerprint(config),
        "mlops.target": config.target,
        "mlops.training_window": config.training.window,
        "mlops.n_batches": str(len(batches)),
        FINGERPRINT_TAG: training_fingerprint(config, batches, (commit, dirty)),
        **(lineage or {}),
    }
    if batch.warnings:  # passed validation with warnings (the baseline in warn mode): say so on the run
        tags[VALIDATION_WARNINGS_TAG] = "; ".join(batch.warnings)[:5000]
    x_train, y_train = train[config.feature_names], train[config.target]
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=lineage.get("airflow.run_id") if lineage else None
    ) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(
            {
                "estimator": config.model.estimator,
                **{f"model.{k}": v for k, v in config.model.params.items()},
                "holdout_fraction": config.split.holdout_fraction,
                "seed": config.split.seed,
                "n_features": len(config.features),
                "train_rows": len(train),
                "holdout_rows": len(holdout),
            }
        )
        try:
            model.fit(x_train, y_train)
        except (TypeError, ValueError) as exc:  # scikit-learn's InvalidParameterError is a ValueError
            raise ModelFitError(
                estimator_refused(config, exc, f"failed to fit on {len(train)} rows", model_override)
            ) from exc
        except Exception as exc:
            raise TrainingError(
                f"pipeline '{config.name}': {config.model.estimator} failed to fit on {len(train)} rows: {exc}"
            ) from exc
        metrics = compute_metrics(config, model, holdout)
        mlflow.log_metrics(metrics)
        mlflow.log_input(
            mlflow.data.from_pandas(
                train, source=batch.uri, name=f"{config.name}-train", targets=config.target
            ),
            context="training",
        )
        mlflow.log_input(
            mlflow.data.from_pandas(
                holdout, source=batch.uri, name=f"{config.name}-holdout", targets=config.target
            ),
            context="holdout",
        )
        snapshot = {"snapshot_hash": digest, "batches": [b.to_dict() for b in batches]}
        mlflow.log_text(json.dumps(snapshot, indent=2), SNAPSHOT_ARTIFACT)
        mlflow.log_text(
            yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), f"config/{config.name}.yaml"
        )
        mlflow.log_text(json.dumps(environment(), indent=2, sort_keys=True), ENVIRONMENT_ARTIFACT)
        _log_table(holdout, HOLDOUT_ARTIFACT)
        # The monitoring reference: computed once, stored with the version (mlops.monitoring.service).
        from mlops.ml.reference import REFERENCE_ARTIFACT, build_reference

        _log_table(build_reference(config, model, train), REFERENCE_ARTIFACT)
        example = x_train.head(5)
        # skops with the types this pipeline needs, or cloudpickle (mlops.ml.serialization); the digest of the
        # files just logged goes on the run, and registration checks and copies it to the version.
        serializer, trusted_types = serialization.choose_format(model, example)
        logged = mlflow.sklearn.log_model(
            sk_model=model,
            name=MODEL_NAME,
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            pip_requirements=_pip_requirements(serializer),
            serialization_format=serializer,
            skops_trusted_types=trusted_types,
        )
        model_digest = serialization.logged_model_digest(logged.model_uri)
        mlflow.set_tags({serialization.FORMAT_TAG: serializer, serialization.DIGEST_TAG: model_digest})
        tags[serialization.FORMAT_TAG] = serializer
        model_uri = f"runs:/{run.info.run_id}/{MODEL_NAME}"
    log.info(
        "Trained %s on %d rows from %d batch(es): %s",
        config.model.estimator,
        len(train),
        len(batches),
        metrics,
    )
    return TrainResult(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=model_uri,
        metrics=metrics,
        snapshot_hash=digest,
        batches=[b.content_hash for b in batches],
        tags=tags,
    )


def estimator_refused(
    config: PipelineConfig,
    error: BaseException,
    what: str,
    model_override: dict[str, Any] | None = None,
) -> str:
    """The message of a deterministic build or fit failure: the estimator, the parameter it names (scikit-learn
    says "The 'n_estimators' parameter of ..."), what the estimator said, and where to fix it."""
    import re

    said = " ".join(str(error).split()).rstrip(".") or type(error).__name__
    named = re.search(r"[Tt]he '(\w+)' parameter", said) or re.search(r"keyword argument '(\w+)'", said)
    parameter = named.group(1) if named else None
    where = "the run's model override" if model_override else f"model.params of pipeline '{config.name}'"
    if parameter is not None and parameter in config.model.params:
        subject = f"model.params.{parameter} = {config.model.params[parameter]!r}"
        advice = f"Fix {parameter} in {where}."
    elif parameter is not None:
        subject = f"parameter {parameter}"
        advice = f"Check {parameter} in {where}."
    else:
        subject = f"params {config.model.params}" if config.model.params else "its default params"
        advice = f"Check {where} and the training data."
    return (
        f"pipeline '{config.name}': {config.model.estimator} {what} with {subject}: {said}. {advice} "
        "Retrying cannot help: the same parameters and data fail the same way."
    )


def _log_table(frame: pd.DataFrame, artifact_path: str) -> None:
    import tempfile
    from pathlib import Path

    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlops-") as tmp:
        local = Path(tmp) / Path(artifact_path).name
        frame.to_parquet(local, index=False)
        mlflow.log_artifact(str(local), artifact_path=str(Path(artifact_path).parent))


def load_holdout(run_id: str) -> pd.DataFrame:
    """The holdout frame logged by a training run."""
    import tempfile

    import pandas as pd

    mlflow = tracking.mlflow()
    with tempfile.TemporaryDirectory(prefix="mlops-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=HOLDOUT_ARTIFACT, dst_path=tmp
        )
        return pd.read_parquet(local)
