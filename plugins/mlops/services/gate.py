"""The quality gate: may this challenger replace the champion?

Both models are scored on the challenger's holdout (which neither has trained on). The very first model faces
the absolute thresholds only. The verdict, its reasons and both sets of metrics are written on the challenger's
model version as tags and as a readable report in its run's artifacts.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from mlops import registry
from mlops.config import PipelineConfig
from mlops.core.gate import Check, Verdict, evaluate_gate
from mlops.core.slices import evaluate_slices
from mlops.ml import slices, training
from mlops.registry import governance
from mlops.registry.cards import refresh_cards

log = logging.getLogger(__name__)


def run_gate(config: PipelineConfig, challenger_version: int) -> Verdict:
    """Score challenger and champion on the challenger's holdout, decide, and record the verdict on the version.

    Raises:
        ModelIntegrityError: the challenger's or the champion's files do not match their digest (or have none);
            nothing is recorded.
    """
    name = config.name
    challenger = registry.get_version(name, challenger_version)
    holdout = training.load_holdout(challenger.run_id)
    # Both models are checked against the digests recorded at registration before they are deserialised.
    challenger_model = registry.load_verified_model(name, challenger_version)
    challenger_metrics = training.compute_metrics(config, challenger_model, holdout)

    # The champion is read once and loaded by that number: an alias moved in between cannot make the verdict
    # record one version and score another.
    champion_version = registry.alias_version(name, registry.CHAMPION)
    champion_metrics = None
    champion_model = None
    notes: list[Check] = []
    if champion_version is not None and champion_version != challenger_version:
        try:
            champion_model = registry.load_verified_model(name, champion_version)
            champion_metrics = training.compute_metrics(config, champion_model, holdout)
        except registry.ModelIntegrityError:
            raise  # a tampered champion is an incident to look at, not a comparison to skip
        except Exception as exc:  # a champion that cannot score today's holdout cannot be compared
            notes.append(
                Check(
                    "-",
                    "comparison",
                    True,
                    f"champion v{champion_version} cannot score this holdout ({type(exc).__name__}: {exc}); "
                    "absolute thresholds only",
                )
            )
            log.warning("Champion v%s cannot score the holdout: %s", champion_version, exc)
    elif champion_version == challenger_version:
        champion_version = None

    passed, checks = evaluate_gate(config.gate, challenger_metrics, champion_metrics)
    challenger_slices, champion_slices = [], []
    if config.gate.slices:
        challenger_slices = slices.slice_metrics(config, challenger_model, holdout)
        if champion_metrics is not None:
            champion_slices = slices.slice_metrics(config, champion_model, holdout)
        checks += evaluate_slices(config.gate, challenger_slices, champion_slices or None)
        passed = all(c.passed for c in checks)
    verdict = Verdict(
        pipeline=name,
        passed=passed,
        challenger_version=challenger_version,
        champion_version=champion_version,
        primary_metric=config.gate.primary_metric,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        checks=checks + notes,
        evaluated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        slices=[s.to_dict() for s in challenger_slices],
        champion_slices=[s.to_dict() for s in champion_slices],
    )
    registry.set_version_tags(name, challenger_version, verdict.to_tags())
    governance.record_compared_against(name, challenger_version, champion_version)
    registry.record_audit(
        name,
        challenger_version,
        f"gate_{verdict.status}",
        {"champion_version": champion_version, "reasons": verdict.reasons},
    )
    mlflow_client = registry.client()
    mlflow_client.log_text(challenger.run_id, verdict.to_markdown(), "gate/verdict.md")
    mlflow_client.log_text(challenger.run_id, json.dumps(verdict.to_dict(), indent=2), "gate/verdict.json")
    log.info("Gate %s for %s v%s: %s", verdict.status, name, challenger_version, "; ".join(verdict.reasons))
    return verdict


def gate_challenger(config: PipelineConfig, challenger_version: int) -> Verdict:
    """The training pipeline's gate step: :func:`run_gate`, then the challenger's model card (a rejected
    version gets one too, with the verdict on it)."""
    verdict = run_gate(config, challenger_version)
    refresh_cards(config.name, [verdict.challenger_version])
    return verdict
