"""Training, unless nothing is new: "no version without news", as TFX and ZenML cache a step.

A run whose inputs equal those of a registered version trains and registers nothing, and names that version.
The inputs are the training fingerprint (:func:`mlops.ml.training.training_fingerprint`): the content hashes
of the batches it would train on, the config parts that shape the model, the recipe (a run's override
included) and the code version. Every training run carries it as tag ``mlops.fingerprint``, and so does its
version, so that one registry search finds a match. ``force`` trains anyway.

Example::

    >>> from mlops.services.training import train_if_new, SameInputs        # doctest: +SKIP
    >>> outcome = train_if_new(config, batch)                                 # doctest: +SKIP
    >>> if isinstance(outcome, SameInputs): print(outcome.message)            # doctest: +SKIP
    same data, config and code as breast_cancer v1 (run 3f2c...): nothing new to train; ...
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

from mlops import registry
from mlops.config import PipelineConfig
from mlops.data.batches import Batch
from mlops.ml import training
from mlops.ml.training import FINGERPRINT_TAG, TrainResult

log = logging.getLogger(__name__)

#: How recent an unregistered training run on the same inputs must be to count (its registration is under way).
RECENT_SECONDS = 1800
#: Run tag of a forced training whose inputs equal an earlier version's: that version's number.
SAME_INPUTS_TAG = "mlops.same_inputs_as"


@dataclass(frozen=True)
class SameInputs:
    """A registered version was trained on exactly these inputs: there is nothing new to train."""

    pipeline: str
    #: The version; None: the training run of another Airflow run that has not registered it yet.
    version: int | None
    run_id: str
    fingerprint: str
    #: What that version is now, where it is worth saying: ``the champion``, ``rejected by the gate``.
    standing: str = ""
    trigger: str | None = None

    @property
    def message(self) -> str:
        standing = f", {self.standing}" if self.standing else ""
        which = (
            f"{self.pipeline} v{self.version} (run {self.run_id}{standing})"
            if self.version is not None
            else f"the {self.pipeline} model that run {self.run_id}{standing} trained a moment ago"
        )
        anyway = "trigger with force=true to train anyway"
        if self.trigger == "drift":
            return (
                "retraining requested by monitoring (drift), but the data, config and code are the same as "
                f"{which}: nothing new to train, the champion keeps serving; {anyway}"
            )
        return f"same data, config and code as {which}: nothing new to train; {anyway}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def with_window(config: PipelineConfig, training_window: str | None) -> PipelineConfig:
    """The config with a run's ``training_window`` (``all`` or ``latest``) over ``training.window``."""
    if training_window not in ("all", "latest"):
        return config
    return config.model_copy(
        update={"training": config.training.model_copy(update={"window": training_window})}
    )


def fingerprint_of(config: PipelineConfig, batch: Batch, model_override: dict[str, Any] | None = None) -> str:
    """The fingerprint a training of ``config`` on the snapshot ending with ``batch`` would record."""
    effective = training.effective_config(config, model_override)
    return training.training_fingerprint(effective, training.snapshot_for(effective, batch))


def find_same_inputs(pipeline: str, fingerprint: str) -> SameInputs | None:
    """The registered version trained on inputs with this fingerprint (the champion if it is one, else the
    newest), or None. One registry search on the version tag; a version registered without the tag (by a
    path that does not copy it) is found through its run's tag, and tagged on the way."""
    client = registry.client()
    found = list(
        client.search_model_versions(f"name='{pipeline}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'")
    )
    if not found:
        found = _untagged_versions(pipeline, fingerprint)
    if not found:
        return None
    champion = registry.alias_version(pipeline, registry.CHAMPION)
    chosen = next((v for v in found if int(v.version) == champion), None) or max(
        found, key=lambda v: int(v.version)
    )
    standing = ""
    if int(chosen.version) == champion:
        standing = "the champion"
    elif (chosen.tags or {}).get("gate.verdict") == "rejected":
        standing = "rejected by the gate"
    return SameInputs(pipeline, int(chosen.version), chosen.run_id, fingerprint, standing)


def _untagged_versions(pipeline: str, fingerprint: str) -> list[Any]:
    client = registry.client()
    experiment = client.get_experiment_by_name(pipeline)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}'", max_results=50
    )
    found = []
    for run in runs:
        for version in client.search_model_versions(f"name='{pipeline}' and run_id='{run.info.run_id}'"):
            registry.set_version_tags(pipeline, int(version.version), {FINGERPRINT_TAG: fingerprint})
            found.append(version)
    return found


def train_if_new(
    config: PipelineConfig,
    batch: Batch,
    *,
    lineage: dict[str, str] | None = None,
    model_override: dict[str, Any] | None = None,
    training_window: str | None = None,
    force: bool = False,
    trigger: str | None = None,
) -> TrainResult | SameInputs:
    """Train on the snapshot ending with ``batch`` (:func:`mlops.ml.training.train_model`) unless a registered
    version has the same fingerprint; then return that version (:class:`SameInputs`), having trained nothing.

    Args:
        config: The pipeline.
        batch: The accepted batch of this run.
        lineage: Tags for the training run (the Airflow run, the trigger and its reason).
        model_override: The run's ``{"estimator": ..., "params": {...}}``.
        training_window: ``all`` or ``latest`` over ``training.window``.
        force: Train even when a version has the same inputs (run tag ``mlops.same_inputs_as`` names it).
        trigger: What asked for the run (``drift``: a retraining request from monitoring); words the message.

    Raises:
        ConfigError: the model override is not a valid recipe (before anything is looked up).
    """
    config = with_window(config, training_window)
    fingerprint = fingerprint_of(config, batch, model_override)
    lineage = dict(lineage or {})
    # Two runs on the same inputs at once (a triggered run and the one unpausing created): the lock makes the
    # second wait, then find the first's version, or its finished training run if not registered yet.
    with registry.training_lock(config.name, fingerprint):
        same = find_same_inputs(config.name, fingerprint) or _trained_meanwhile(
            config.name, fingerprint, lineage.get("airflow.run_id")
        )
        if same is not None:
            if not force:
                same = replace(same, trigger=trigger)
                log.info("%s", same.message)
                return same
            log.info("force: training although %s has the same inputs", same.run_id)
            lineage[SAME_INPUTS_TAG] = str(same.version or same.run_id)
        return training.train_model(config, batch, lineage=lineage, model_override=model_override)


def _trained_meanwhile(pipeline: str, fingerprint: str, airflow_run_id: str | None) -> SameInputs | None:
    """A training run of another Airflow run on these inputs that finished in the last half hour: its version is
    being registered (a run that never registered one, older than that, does not count)."""
    import time

    client = registry.client()
    experiment = client.get_experiment_by_name(pipeline)
    if experiment is None:
        return None
    since = int((time.time() - RECENT_SECONDS) * 1000)
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}' and attributes.status = 'FINISHED' "
        f"and attributes.start_time > {since}",
        max_results=20,
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        if airflow_run_id is None or run.data.tags.get("airflow.run_id") != airflow_run_id:  # not our own try
            return SameInputs(
                pipeline,
                None,
                run.info.run_id,
                fingerprint,
                f"of {run.data.tags.get('airflow.run_id', 'another run')}",
            )
    return None
