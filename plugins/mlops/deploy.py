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
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops import registry
from mlops.config import Canary, PipelineConfig
from mlops.errors import MlopsError, RegistryError

log = logging.getLogger(__name__)

CANARY = "canary"


class DeploymentRejected(MlopsError):
    """The challenger failed its smoke test or its canary: it was not promoted and the champion serves on."""

    code = "DEPLOYMENT_REJECTED"


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
        "mlops.smoke",
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


@dataclass
class CanaryDecision:
    action: str  # "promote" | "rollback" | "wait"
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def prediction_shift(champion: dict[str, Any], canary: dict[str, Any]) -> float | None:
    """Distance between the two routes' predictions: total variation of class shares, or the shift of the
    mean in champion standard deviations (regression). None when either side has no predictions yet."""
    if champion.get("class_counts") is not None and canary.get("class_counts") is not None:
        a, b = champion["class_counts"], canary["class_counts"]
        total_a, total_b = sum(a.values()), sum(b.values())
        if not total_a or not total_b:
            return None
        labels = set(a) | set(b)
        return 0.5 * sum(abs(a.get(k, 0) / total_a - b.get(k, 0) / total_b) for k in labels)
    if champion.get("mean") is None or canary.get("mean") is None:
        return None
    spread = champion.get("std") or 1e-9
    return abs(canary["mean"] - champion["mean"]) / spread


def judge_canary(stats: dict[str, Any], rules: Canary, elapsed_seconds: float) -> CanaryDecision:
    """Decide a canary phase from the server's guard statistics (``GET /canary``)."""
    canary, champion = stats["canary"], stats["champion"]
    evidence = {"canary": canary, "champion": champion, "elapsed_seconds": round(elapsed_seconds, 1)}
    requests = canary.get("requests", 0)
    if requests < rules.min_requests:
        if elapsed_seconds >= rules.max_duration_seconds:
            return CanaryDecision(
                "rollback",
                [
                    f"only {requests} of {rules.min_requests} requests reached the challenger in {rules.max_duration_seconds:g} s"
                ],
                evidence,
            )
        return CanaryDecision("wait", evidence=evidence)
    reasons = []
    error_rate = canary.get("errors", 0) / requests
    if error_rate > rules.max_error_rate:
        reasons.append(f"error rate {error_rate:.1%} above {rules.max_error_rate:.1%}")
    p99 = canary.get("p99_ms")
    if p99 is not None and p99 > rules.max_p99_latency_ms:
        reasons.append(f"p99 latency {p99:.0f} ms above {rules.max_p99_latency_ms:g} ms")
    shift = prediction_shift(champion, canary)
    if shift is not None and shift > rules.max_prediction_shift:
        reasons.append(
            f"predictions moved {shift:.3f} from the champion's, above {rules.max_prediction_shift:g}"
        )
    evidence["prediction_shift"] = shift
    if reasons:
        return CanaryDecision("rollback", reasons, evidence)
    ok = f"{requests} requests, error rate {error_rate:.1%}, p99 {p99 if p99 is not None else float('nan'):.0f} ms"
    return CanaryDecision(
        "promote", [ok + (f", prediction shift {shift:.3f}" if shift is not None else "")], evidence
    )


def _server(config: PipelineConfig, method: str, path: str, timeout: float = 10.0) -> Any:
    import httpx

    token = os.environ.get("MLOPS_SERVING_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{config.server_url}{path}", timeout=timeout, headers=headers)


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


def run_canary(
    config: PipelineConfig,
    version: int,
    *,
    poll_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> CanaryDecision:
    """Point alias ``canary`` at ``version``, let the model server route traffic to it (canary) or shadow the
    champion with it, and decide from the live guard statistics. The alias is removed afterwards either way."""
    mlflow_client = registry.client()
    mlflow_client.set_registered_model_alias(config.name, CANARY, version)
    registry.record_audit(
        config.name,
        version,
        "canary_started",
        {"strategy": config.deploy.strategy, "server": config.server_url},
    )
    notify_server(config)
    started = clock()
    decision = CanaryDecision("wait")
    try:
        while decision.action == "wait":
            time.sleep(poll_seconds)
            elapsed = clock() - started
            try:
                response = _server(config, "GET", "/canary")
                stats = response.json() if response.status_code == 200 else None
            except Exception as exc:
                stats = None
                log.warning("Model server at %s did not answer /canary: %s", config.server_url, exc)
            if stats is None or stats.get("canary_version") != version:
                if elapsed >= config.deploy.canary.max_duration_seconds:
                    decision = CanaryDecision(
                        "rollback",
                        [f"the model server at {config.server_url} never served v{version} as canary"],
                    )
                continue
            decision = judge_canary(stats, config.deploy.canary, elapsed)
    finally:
        mlflow_client.delete_registered_model_alias(config.name, CANARY)
        notify_server(config)
    registry.record_audit(
        config.name,
        version,
        f"canary_{decision.action}",
        {"reasons": decision.reasons, "evidence": decision.evidence},
    )
    return decision


def deploy_challenger(
    config: PipelineConfig,
    version: int,
    expected_champion: int | None,
    *,
    actor: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Smoke test, canary or shadow phase where configured, then compare-and-set promotion.

    Raises:
        DeploymentRejected: the smoke test or the canary said no; the champion is untouched.
        PromotionConflict: someone else promoted in between; nothing changed.
    """
    evidence = dict(evidence or {})
    if config.deploy.smoke_test.enabled:
        smoke = smoke_test(config, version)
        evidence["smoke_test"] = asdict(smoke)
        if not smoke.passed:
            registry.set_version_tags(config.name, version, {"deploy.status": "rejected"})
            raise DeploymentRejected(f"{config.name} v{version} not deployed, {smoke.summary()}")
    if config.deploy.strategy in ("canary", "shadow") and expected_champion is None:
        # A first model has no champion to compare with and no live traffic yet: nothing for a canary to judge.
        evidence["canary"] = {"decision": "skipped", "reasons": ["no champion yet: first model"]}
    elif config.deploy.strategy in ("canary", "shadow"):
        decision = run_canary(config, version)
        evidence["canary"] = {"decision": decision.action, "reasons": decision.reasons}
        if decision.action != "promote":
            registry.set_version_tags(config.name, version, {"deploy.status": "rolled_back"})
            raise DeploymentRejected(
                f"{config.name} v{version} rolled back after its {config.deploy.strategy} phase: "
                + "; ".join(decision.reasons)
            )
    entry = registry.promote(
        config.name, version, expected_champion, audit={"by": actor, "reason": reason, "evidence": evidence}
    )
    notify_server(config)
    return entry


def rollback(
    config: PipelineConfig, *, to_version: int | None = None, actor: str, reason: str
) -> dict[str, Any]:
    """Point ``champion`` back at ``to_version`` (default: the version it replaced), with compare-and-set.

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
    return entry


def history(pipeline: str) -> list[dict[str, Any]]:
    """Every audit entry of every version of a pipeline's model, oldest first, with its version."""
    entries = []
    for version in registry.client().search_model_versions(f"name='{pipeline}'"):
        for entry in registry.audit_trail(pipeline, int(version.version)):
            entries.append({"version": int(version.version), **entry})
    return sorted(entries, key=lambda e: e["at"])
