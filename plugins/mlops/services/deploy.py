"""Deployment: smoke test, canary or shadow phase, compare-and-set promotion, rollback, and the history.

Every step leaves an audit entry on the model versions (who, when, from which version to which, why, the
evidence), so ``mlops history`` and the MLflow UI tell what served when and who decided.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from mlops import registry
from mlops.config import Canary, PipelineConfig, settings
from mlops.core.canary import CanaryDecision, judge_canary
from mlops.errors import MlopsError, RegistryError
from mlops.registry.cards import refresh_cards

log = logging.getLogger(__name__)

CANARY = "canary"


class DeploymentRejected(MlopsError):
    """The challenger failed its smoke test or its canary: it was not promoted and the champion serves on."""

    code = "DEPLOYMENT_REJECTED"
    permanent = True  # the verdict of a smoke test or a canary does not change on a retry


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    reasons: list[str]
    load_seconds: float | None = None
    predict_ms: float | None = None
    rows: int = 0

    def summary(self) -> str:
        if self.passed:
            return f"smoke test passed: loaded in {self.load_seconds:.1f} s, {self.rows} rows in {self.predict_ms:.0f} ms"
        return "smoke test failed: " + "; ".join(self.reasons)


def smoke_test(config: PipelineConfig, version: int) -> SmokeResult:
    """Load ``version`` in a separate process, predict its input example and a holdout sample, check the output
    and the latency budget. Recorded on the version (tags ``smoke.*`` and an audit entry)."""
    rules = config.deploy.smoke_test
    command = [
        sys.executable,
        "-m",
        "mlops.services.smoke",
        config.name,
        str(version),
        "--rows",
        str(rules.sample_rows),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=rules.timeout_seconds, env=os.environ.copy()
        )
    except subprocess.TimeoutExpired:
        result = SmokeResult(False, [f"did not load and predict within {rules.timeout_seconds:g} s"])
    else:
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("SMOKE ")), None)
        if line is None:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            result = SmokeResult(
                False, [f"the smoke process died (exit {done.returncode}): {' | '.join(tail)}"]
            )
        else:
            data = json.loads(line.removeprefix("SMOKE "))
            reasons = list(data["reasons"])
            predict_ms = data.get("predict_ms")
            if predict_ms is not None and predict_ms > rules.latency_budget_ms:
                reasons.append(
                    f"{data['rows']} rows took {predict_ms:.0f} ms, over the budget of {rules.latency_budget_ms:g} ms"
                )
            result = SmokeResult(
                not reasons, reasons, data.get("load_seconds"), predict_ms, data.get("rows", 0)
            )
    registry.set_version_tags(
        config.name,
        version,
        {
            "smoke.passed": str(result.passed).lower(),
            "smoke.predict_ms": result.predict_ms,
            "smoke.reasons": " | ".join(result.reasons),
        },
    )
    registry.record_audit(
        config.name, version, "smoke_test", {"passed": result.passed, "reasons": result.reasons}
    )
    log.info("%s v%s: %s", config.name, version, result.summary())
    return result


def admin_headers() -> dict[str, str]:
    """The model server's admin bearer token header: ``MLOPS_SERVING_ADMIN_TOKEN``, else the token a server
    generated into ``<MLOPS_HOME>/serving.token`` (the embedded default), when there is one."""
    token = settings.serving_admin_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _server(config: PipelineConfig, method: str, path: str, timeout: float = 10.0) -> Any:
    import httpx

    return httpx.request(method, f"{config.server_url}{path}", timeout=timeout, headers=admin_headers())


def notify_server(config: PipelineConfig) -> None:
    """Ask the pipeline's model server to re-read its aliases now (best effort: it also polls)."""
    try:
        _server(config, "POST", "/admin/reload", timeout=5.0)
    except Exception as exc:
        log.info(
            "Model server at %s not reached (%s); it will pick the change up when it polls",
            config.server_url,
            exc,
        )


# The canary (or shadow) phase ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CanaryPhase:
    """A canary (or shadow) phase under way: what watching it and ending it need, JSON-able both ways
    (:meth:`to_dict`, :meth:`from_dict`), so that it can wait in a deferred task's trigger.

    Attributes:
        pipeline: The pipeline (and registered model) name.
        version: The challenger serving as canary.
        expected_champion: The champion the gate compared it with (compare-and-set at promotion).
        server_url: The model server whose ``GET /canary`` reports the guard statistics.
        started_at: When the phase started (seconds since the epoch).
        rules: The guard rails (``deploy.canary`` of the config, as a dict).
        actor: Who deploys (kept in the promotion's audit entry).
        reason: Why (idem).
        evidence: The evidence gathered so far (gate, approval, smoke test), completed at the end.
    """

    pipeline: str
    version: int
    expected_champion: int | None
    server_url: str
    started_at: float
    rules: dict[str, Any]
    actor: str
    reason: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanaryPhase:
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def guard(self) -> Canary:
        return Canary.model_validate(self.rules)


def canary_progress(
    phase: CanaryPhase, stats: dict[str, Any] | None, elapsed_seconds: float
) -> CanaryDecision:
    """One look at the model server's guard statistics (``GET /canary``, or None when it did not answer):
    ``wait``, or how the phase ends (:func:`mlops.core.canary.judge_canary`; a server that never served the
    canary by the deadline rolls it back). Pure: the trigger that watches a phase and the step that ends it
    call it on the same statistics and so agree."""
    if stats is None or stats.get("canary_version") != phase.version:
        if elapsed_seconds >= phase.guard().max_duration_seconds:
            return CanaryDecision(
                "rollback",
                [f"the model server at {phase.server_url} never served v{phase.version} as canary"],
            )
        return CanaryDecision("wait")
    return judge_canary(stats, phase.guard(), elapsed_seconds)


def canary_stats(config: PipelineConfig) -> dict[str, Any] | None:
    """The model server's guard statistics of the current canary phase, or None (no phase, no answer)."""
    try:
        response = _server(config, "GET", "/canary")
    except Exception as exc:
        log.warning("Model server at %s did not answer /canary: %s", config.server_url, exc)
        return None
    return response.json() if response.status_code == 200 else None


def start_canary(
    config: PipelineConfig,
    version: int,
    expected_champion: int | None = None,
    *,
    actor: str = "",
    reason: str = "",
    evidence: dict[str, Any] | None = None,
) -> CanaryPhase:
    """Point alias ``canary`` at ``version`` and tell the model server, which then routes a share of the
    traffic to it (canary) or shadows the champion with it. Audited (``canary_started``)."""
    registry.client().set_registered_model_alias(config.name, CANARY, version)
    registry.record_audit(
        config.name,
        version,
        "canary_started",
        {"strategy": config.deploy.strategy, "server": config.server_url},
    )
    notify_server(config)
    return CanaryPhase(
        pipeline=config.name,
        version=version,
        expected_champion=expected_champion,
        server_url=config.server_url,
        started_at=time.time(),
        rules=config.deploy.canary.model_dump(mode="json"),
        actor=actor,
        reason=reason,
        evidence=dict(evidence or {}),
    )


def end_canary(config: PipelineConfig, version: int, decision: CanaryDecision) -> None:
    """Remove alias ``canary`` (the server goes back to the champion alone) and audit the decision."""
    try:
        registry.client().delete_registered_model_alias(config.name, CANARY)
    finally:
        notify_server(config)
    registry.record_audit(
        config.name,
        version,
        f"canary_{decision.action}",
        {"reasons": decision.reasons, "evidence": decision.evidence},
    )


def run_canary(
    config: PipelineConfig,
    version: int,
    *,
    poll_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> CanaryDecision:
    """A whole canary phase in this process, polling the server until it ends (for callers without a
    scheduler; the training DAG waits for it in a trigger instead). The alias is removed afterwards either way."""
    phase = start_canary(config, version)
    started = clock()
    decision = CanaryDecision("wait")
    try:
        while decision.action == "wait":
            time.sleep(poll_seconds)
            decision = canary_progress(phase, canary_stats(config), clock() - started)
    except BaseException:
        decision = CanaryDecision("rollback", ["the canary phase was interrupted"])
        raise
    finally:
        end_canary(config, version, decision)
    return decision


def complete_canary(config: PipelineConfig, phase: CanaryPhase, outcome: dict[str, Any]) -> dict[str, Any]:
    """End a canary phase from what its watcher saw last, then promote the challenger or roll it back.

    Args:
        config: The pipeline.
        phase: The phase :func:`begin_deployment` started.
        outcome: What the watcher reports: ``stats`` (the last guard statistics, or None) and
            ``elapsed_seconds``, ``problem`` (the server's last failure to answer, if any); or ``error``
            when the watch itself failed.

    Returns:
        The promotion's audit entry (the cards of both versions refreshed).

    Raises:
        DeploymentRejected: the canary was rolled back; the champion serves on.
        PromotionConflict: someone else promoted in between; nothing changed.
    """
    stats = outcome.get("stats")
    if outcome.get("error"):
        decision = CanaryDecision("rollback", [f"the canary phase could not be watched: {outcome['error']}"])
    else:
        decision = canary_progress(phase, stats, float(outcome.get("elapsed_seconds") or 0.0))
        if decision.action == "wait":  # the watcher stopped before the guard could decide
            decision = CanaryDecision("rollback", ["the canary phase ended before its guard could decide"])
    if stats is None and outcome.get("problem"):
        decision.reasons.append(f"last answer of the server: {outcome['problem']}")
    end_canary(config, phase.version, decision)
    evidence = _canary_passed(config, phase.version, decision, dict(phase.evidence))
    return _promote(config, phase.version, phase.expected_champion, phase.actor, phase.reason, evidence)


# Deployment ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rollout:
    """What :func:`begin_deployment` did: promoted at once (``entry``), or started a canary phase (``canary``)
    that :func:`complete_canary` ends."""

    entry: dict[str, Any] | None = None
    canary: CanaryPhase | None = None


def _smoke_checked(config: PipelineConfig, version: int, evidence: dict[str, Any]) -> dict[str, Any]:
    if config.deploy.smoke_test.enabled:
        smoke = smoke_test(config, version)
        evidence["smoke_test"] = asdict(smoke)
        if not smoke.passed:
            registry.set_version_tags(config.name, version, {"deploy.status": "rejected"})
            raise DeploymentRejected(f"{config.name} v{version} not deployed, {smoke.summary()}")
    return evidence


def _needs_canary(config: PipelineConfig, expected_champion: int | None, evidence: dict[str, Any]) -> bool:
    if config.deploy.strategy not in ("canary", "shadow"):
        return False
    if expected_champion is None:
        # A first model has no champion to compare with and no live traffic yet: nothing for a canary to judge.
        evidence["canary"] = {"decision": "skipped", "reasons": ["no champion yet: first model"]}
        return False
    return True


def _canary_passed(
    config: PipelineConfig, version: int, decision: CanaryDecision, evidence: dict[str, Any]
) -> dict[str, Any]:
    evidence["canary"] = {"decision": decision.action, "reasons": decision.reasons}
    if decision.action != "promote":
        registry.set_version_tags(config.name, version, {"deploy.status": "rolled_back"})
        raise DeploymentRejected(
            f"{config.name} v{version} rolled back after its {config.deploy.strategy} phase: "
            + "; ".join(decision.reasons)
        )
    return evidence


def _promote(
    config: PipelineConfig,
    version: int,
    expected_champion: int | None,
    actor: str,
    reason: str,
    evidence: dict[str, Any],
    *,
    cards: bool = True,
) -> dict[str, Any]:
    entry = registry.promote(
        config.name, version, expected_champion, audit={"by": actor, "reason": reason, "evidence": evidence}
    )
    notify_server(config)
    if cards:
        refresh_cards(config.name, [version, entry.get("from_version")])
    return entry


def begin_deployment(
    config: PipelineConfig,
    version: int,
    expected_champion: int | None,
    *,
    actor: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> Rollout:
    """The training pipeline's deploy step, up to the wait: smoke test, then either compare-and-set
    promotion at once (strategy ``direct``, or a first model) with both model cards refreshed, or the start
    of a canary (or shadow) phase, which :func:`complete_canary` ends once it has been watched.

    Raises:
        DeploymentRejected: the smoke test said no; the champion is untouched.
        PromotionConflict: someone else promoted in between; nothing changed.
    """
    evidence = _smoke_checked(config, version, dict(evidence or {}))
    if _needs_canary(config, expected_champion, evidence):
        return Rollout(
            canary=start_canary(
                config, version, expected_champion, actor=actor, reason=reason, evidence=evidence
            )
        )
    return Rollout(entry=_promote(config, version, expected_champion, actor, reason, evidence))


def deploy_challenger(
    config: PipelineConfig,
    version: int,
    expected_champion: int | None,
    *,
    actor: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Smoke test, canary or shadow phase where configured (watched in this process), then compare-and-set
    promotion: the whole deployment in one call, for callers without a scheduler.

    Raises:
        DeploymentRejected: the smoke test or the canary said no; the champion is untouched.
        PromotionConflict: someone else promoted in between; nothing changed.
    """
    evidence = _smoke_checked(config, version, dict(evidence or {}))
    if _needs_canary(config, expected_champion, evidence):
        evidence = _canary_passed(config, version, run_canary(config, version), evidence)
    return _promote(config, version, expected_champion, actor, reason, evidence, cards=False)


def rollback(
    config: PipelineConfig, *, to_version: int | None = None, actor: str, reason: str
) -> dict[str, Any]:
    """Point ``champion`` back at ``to_version`` (default: the version it replaced), with compare-and-set,
    and refresh both versions' model cards.

    Raises:
        RegistryError: there is no champion, or nothing to roll back to.
    """
    pipeline = config.name
    current = registry.alias_version(pipeline, registry.CHAMPION)
    if current is None:
        raise RegistryError(f"'{pipeline}' has no champion to roll back")
    if to_version is None:
        promoted = [
            e for e in registry.audit_trail(pipeline, current) if e["event"] in ("promoted", "rolled_back_to")
        ]
        previous = promoted[-1].get("from_version") if promoted else None
        if previous is None:
            raise RegistryError(f"'{pipeline}' v{current} replaced no earlier champion: give --to-version")
        to_version = int(previous)
    if to_version == current:
        raise RegistryError(f"'{pipeline}' v{to_version} is already the champion")
    from mlflow.exceptions import MlflowException

    try:
        registry.get_version(pipeline, to_version)
    except MlflowException as exc:
        raise RegistryError(f"'{pipeline}' has no version {to_version} to roll back to") from exc
    entry = registry.move_champion(
        pipeline, to_version, current, event="rolled_back_to", audit={"by": actor, "reason": reason}
    )
    notify_server(config)
    refresh_cards(pipeline, [entry["to_version"], entry.get("from_version")])
    return entry


def history(pipeline: str) -> list[dict[str, Any]]:
    """Every audit entry of every version of a pipeline's model, oldest first, with its version."""
    entries = []
    for version in registry.client().search_model_versions(f"name='{pipeline}'"):
        for entry in registry.audit_trail(pipeline, int(version.version)):
            entries.append({"version": int(version.version), **entry})
    return sorted(entries, key=lambda e: e["at"])
