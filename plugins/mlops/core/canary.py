"""The canary judgement (pure): promote, keep waiting, or roll back, from the live route statistics."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from mlops.config import Canary

log = logging.getLogger(__name__)


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
        return float(0.5 * sum(abs(a.get(k, 0) / total_a - b.get(k, 0) / total_b) for k in labels))
    if champion.get("mean") is None or canary.get("mean") is None:
        return None
    spread = champion.get("std") or 1e-9
    return float(abs(canary["mean"] - champion["mean"]) / spread)


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
