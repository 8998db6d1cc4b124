"""Rebuild a model version from its lineage and say whether it comes out the same.

``reproduce(pipeline, version)`` reads what the version was built from (the config logged with its run, the
snapshot of batch URIs and content hashes, the environment, the code version), checks every batch's content
hash and the original model's files against their digest (:mod:`mlops.registry.integrity`) **before**
training, retrains in a new MLflow run tagged ``mlops.reproduction_of``, and compares the rebuilt model with
the original on the original holdout:

- ``identical``: same holdout, same predictions (and probabilities) bit for bit, same metrics;
- ``within tolerance``: no predicted label changes, numbers differ by at most ``tolerance``;
- ``different``: anything else, or the data could not be read as it was.

When it is not identical, the likely causes are named: a batch missing or changed, or model files that do not
match their digest (then nothing is trained), package versions that differ from the original's
``environment/environment.json``, another code version, an estimator without a seed. The outcome is recorded
on the version as an audit entry (``reproduced``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops import registry
from mlops.data import storage
from mlops.ml import tracking, training
from mlops.registry import governance

log = logging.getLogger(__name__)

IDENTICAL, WITHIN_TOLERANCE, DIFFERENT = "identical", "within tolerance", "different"
REPORT_ARTIFACT = "reproduction/report.json"
#: Packages whose versions change what a scikit-learn pipeline computes, checked first.
KEY_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "joblib", "threadpoolctl", "pyarrow")


@dataclass
class Reproduction:
    """The outcome of rebuilding one version, with the evidence."""

    pipeline: str
    version: int
    original_run_id: str
    outcome: str
    trained: bool
    run_id: str | None = None
    causes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    environment: list[dict[str, Any]] = field(default_factory=list)
    code: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)
    tolerance: float = 1e-6
    #: Whether the original was trained with the default seed (runs from before it existed were not).
    seeded: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"{self.pipeline} v{self.version}: {self.outcome.upper()}"]
        if self.run_id:
            lines[0] += f" (reproduction run {self.run_id})"
        lines += [f"  cause: {cause}" for cause in self.causes]
        lines += [f"  note: {note}" for note in self.notes]
        if self.predictions:
            p = self.predictions
            lines.append(
                f"  predictions on {p.get('rows')} holdout rows: {p.get('label_mismatches', 0)} label(s) differ, "
                f"largest numeric difference {p.get('max_abs_diff', 0):.3g}"
            )
        for metric, values in sorted(self.metrics.items()):
            if values.get("rebuilt") is not None and values.get("original") is not None:
                lines.append(
                    f"  {metric}: original {values['original']:.6f}, rebuilt {values['rebuilt']:.6f} "
                    f"(difference {values['diff']:.3g})"
                )
        return "\n".join(lines)


def check_batches(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each batch of a snapshot: ``ok``, ``missing`` or ``changed`` (its content hash is not the recorded one)."""
    results = []
    for batch in batches:
        uri, expected = batch["uri"], batch["content_hash"]
        entry = {"uri": uri, "source": batch.get("source"), "expected_hash": expected, "found_hash": None}
        try:
            if not storage.exists(uri):
                entry["status"] = "missing"
            else:
                entry["found_hash"] = storage.content_hash(uri)
                entry["status"] = "ok" if entry["found_hash"] == expected else "changed"
        except Exception as exc:  # unreadable is as good as missing for a rebuild, and says why
            entry["status"], entry["error"] = "missing", f"{type(exc).__name__}: {exc}"
        results.append(entry)
    return results


def environment_differences(original: dict[str, Any], now: dict[str, Any]) -> list[dict[str, Any]]:
    """Packages (and Python) whose versions differ, the ones that matter to the model first."""
    before, after = original.get("packages", {}), now.get("packages", {})
    changed = [
        {"package": name, "original": before.get(name), "now": after.get(name)}
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
    rank = {name: i for i, name in enumerate(KEY_PACKAGES)}
    changed.sort(key=lambda d: (rank.get(d["package"], len(rank)), d["package"]))
    if original.get("python") and original.get("python") != now.get("python"):
        changed.insert(0, {"package": "python", "original": original.get("python"), "now": now.get("python")})
    return changed


def _describe_packages(differences: list[dict[str, Any]], limit: int = 4) -> str:
    shown = [
        f"{d['package']} {d['original'] or '(absent)'} -> {d['now'] or '(absent)'}"
        for d in differences[:limit]
    ]
    more = f" and {len(differences) - limit} more" if len(differences) > limit else ""
    return ", ".join(shown) + more


def _unseeded(config: Any, seeded: bool) -> bool:
    """The estimator takes a random_state and was trained without one: two fits may differ."""
    return training.estimator_seed(config, seeded=seeded) == "none"


def compare_predictions(config: Any, original: Any, rebuilt: Any, holdout: Any) -> dict[str, Any]:
    """Label agreement and the largest numeric difference (probabilities or regression values)."""
    import numpy as np

    x = holdout[config.feature_names]
    first, second = original.predict(x), rebuilt.predict(x)
    result: dict[str, Any] = {"rows": len(x), "identical": bool(np.array_equal(first, second))}
    if config.task == "classification":
        result["label_mismatches"] = int((np.asarray(first) != np.asarray(second)).sum())
        diff = 0.0
        if hasattr(original, "predict_proba") and hasattr(rebuilt, "predict_proba"):
            p1, p2 = original.predict_proba(x), rebuilt.predict_proba(x)
            result["identical"] = result["identical"] and bool(np.array_equal(p1, p2))
            diff = float(np.max(np.abs(p1 - p2))) if p1.shape == p2.shape and p1.size else float("inf")
        result["max_abs_diff"] = diff
    else:
        result["label_mismatches"] = 0
        result["max_abs_diff"] = float(np.max(np.abs(np.asarray(first, float) - np.asarray(second, float))))
    return result


def reproduce(pipeline: str, version: int, *, tolerance: float = 1e-6, actor: str = "cli") -> Reproduction:
    """Rebuild ``version`` of ``pipeline`` from its lineage in a new MLflow run and compare it with the original.

    Raises:
        RegistryError: the version or its lineage (config, snapshot) cannot be found.
    """
    from mlflow.exceptions import MlflowException

    from mlops.data.batches import Batch
    from mlops.errors import RegistryError

    try:
        model_version = registry.get_version(pipeline, version)
    except MlflowException as exc:
        raise RegistryError(f"'{pipeline}' has no version {version}: {exc.message}") from exc
    original_run = registry.client().get_run(model_version.run_id)
    tags = original_run.data.tags
    snapshot_text = governance.load_text(original_run.info.run_id, training.SNAPSHOT_ARTIFACT)
    if snapshot_text is None:
        raise RegistryError(
            f"{pipeline} v{version}: its run has no {training.SNAPSHOT_ARTIFACT}; cannot rebuild"
        )
    snapshot = json.loads(snapshot_text)
    config = governance.logged_config(original_run.info.run_id, pipeline)
    original_env = json.loads(
        governance.load_text(original_run.info.run_id, training.ENVIRONMENT_ARTIFACT) or "{}"
    )
    commit, dirty = training.code_version()
    result = Reproduction(
        pipeline=pipeline,
        version=version,
        original_run_id=original_run.info.run_id,
        outcome=DIFFERENT,
        trained=False,
        tolerance=tolerance,
        data=check_batches(snapshot["batches"]),
        environment=environment_differences(original_env, training.environment()) if original_env else [],
        code={"original": tags.get("mlops.code_version"), "now": commit, "dirty_now": dirty},
        seeded="mlops.estimator_seed" in tags,
    )
    if not original_env:
        result.notes.append("the original run has no environment record: package versions cannot be compared")
    # Like the batches, the original model is checked before anything is trained: its files must match the
    # digest recorded at registration before they are deserialised (and compared).
    original_model, tampered = None, None
    try:
        original_model = registry.load_verified_model(pipeline, version)
    except registry.ModelIntegrityError as exc:
        tampered = str(exc)
    except Exception as exc:
        result.notes.append(
            f"the original model cannot be loaded here ({type(exc).__name__}: {exc}); metrics only"
        )
    mlflow = tracking.mlflow()
    experiment_id = training.ensure_experiment(pipeline)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"reproduce-v{version}") as run:
        result.run_id = run.info.run_id
        mlflow.set_tags(
            {
                "mlops.pipeline": pipeline,
                "mlops.reproduction_of": str(version),
                "mlops.reproduction_of_run": original_run.info.run_id,
                "mlops.data_hash": snapshot.get("snapshot_hash", ""),
                "mlops.config_hash": tags.get("mlops.config_hash", ""),
                "mlops.code_version": commit,
                "mlops.code_dirty": str(dirty).lower(),
            }
        )
        mlflow.log_text(
            json.dumps(training.environment(), indent=2, sort_keys=True), training.ENVIRONMENT_ARTIFACT
        )
        bad = [d for d in result.data if d["status"] != "ok"]
        if bad:
            result.causes = [
                f"data {d['status']}: batch {d['expected_hash'][:12]} at {d['uri']}"
                + (f" now hashes to {d['found_hash'][:12]}" if d["status"] == "changed" else "")
                + (f" (source {d['source']})" if d.get("source") else "")
                for d in bad
            ]
            result.notes.append("nothing was trained: the data is not what the version learnt from")
        elif tampered is not None:
            result.causes = [f"model files changed: {tampered}"]
            result.notes.append("nothing was trained: the registered model is not the one that was trained")
        else:
            batches = [Batch.from_dict(b) for b in snapshot["batches"]]
            _rebuild_and_compare(result, config, batches, original_run, original_model)
        mlflow.set_tag("mlops.reproduction.outcome", result.outcome)
        mlflow.log_text(json.dumps(result.to_dict(), indent=2, default=str), REPORT_ARTIFACT)
    registry.record_audit(
        pipeline,
        version,
        "reproduced",
        {"by": actor, "outcome": result.outcome, "run_id": result.run_id, "reasons": result.causes},
    )
    log.info("%s", result.summary())
    return result


def _rebuild_and_compare(
    result: Reproduction, config: Any, batches: list[Any], original_run: Any, original_model: Any
) -> None:
    import mlflow

    train, holdout = training.split_snapshot(config, batches)
    model = training.build_pipeline(config, seeded=result.seeded)
    model.fit(train[config.feature_names], train[config.target])
    result.trained = True
    rebuilt_metrics = training.compute_metrics(config, model, holdout)
    mlflow.log_metrics(rebuilt_metrics)
    original_metrics = dict(original_run.data.metrics)
    for metric in sorted(set(original_metrics) | set(rebuilt_metrics)):
        before, after = original_metrics.get(metric), rebuilt_metrics.get(metric)
        diff = abs(after - before) if before is not None and after is not None else None
        result.metrics[metric] = {"original": before, "rebuilt": after, "diff": diff}

    original_holdout = training.load_holdout(result.original_run_id)
    same_holdout = original_holdout.equals(holdout)
    if original_model is not None:
        result.predictions = compare_predictions(config, original_model, model, original_holdout)
    metric_diffs = [v["diff"] for v in result.metrics.values() if v["diff"] is not None]
    largest_metric_diff = max(metric_diffs, default=0.0)
    predictions = result.predictions
    if same_holdout and predictions.get("identical", original_model is None) and largest_metric_diff == 0.0:
        result.outcome = IDENTICAL
    elif (
        same_holdout
        and predictions.get("label_mismatches", 0) == 0
        and predictions.get("max_abs_diff", 0.0) <= result.tolerance
        and largest_metric_diff <= result.tolerance
    ):
        result.outcome = WITHIN_TOLERANCE
    else:
        result.outcome = DIFFERENT
    causes = []
    if not same_holdout:
        causes.append("the holdout split came out differently (the split depends on scikit-learn and pandas)")
    if result.environment:
        causes.append(f"package versions differ: {_describe_packages(result.environment)}")
    if result.code.get("original") and result.code["original"] != result.code["now"]:
        causes.append(f"code version differs: {result.code['original'][:12]} -> {result.code['now'][:12]}")
    if _unseeded(config, result.seeded):
        causes.append(f"non-deterministic estimator: {config.model.estimator} has no random_state")
    if result.outcome == IDENTICAL:
        result.notes += [f"{cause}, yet the rebuild is identical" for cause in causes]
    else:
        result.causes = causes or ["no difference in data, packages, code or seeds was found; see the report"]
