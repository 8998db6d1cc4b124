"""The quality gate: may this challenger replace the champion?

Both models are scored on the challenger's holdout (which neither has trained on). The very first model faces
the absolute thresholds only. The verdict, its reasons and both sets of metrics are written on the challenger's
model version as tags and as a readable report in its run's artifacts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops.config import LOWER_IS_BETTER, Gate, MetricRule, PipelineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One rule applied to one metric."""

    metric: str
    rule: str  # "threshold" | "regression" | "available"
    passed: bool
    message: str


@dataclass(frozen=True)
class Verdict:
    pipeline: str
    passed: bool
    challenger_version: int
    champion_version: int | None
    primary_metric: str
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    checks: list[Check] = field(default_factory=list)
    evaluated_at: str = ""
    #: Per-slice metrics (``mlops.slices.SliceMetrics`` as dicts) of the challenger and the champion.
    slices: list[dict[str, Any]] = field(default_factory=list)
    champion_slices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "rejected"

    @property
    def reasons(self) -> list[str]:
        """What decided the verdict: the failed checks when rejected, every check when passed."""
        failed = [c.message for c in self.checks if not c.passed]
        return failed if failed else [c.message for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["reasons"] = self.reasons
        return data

    def to_tags(self) -> dict[str, str]:
        tags = {
            "gate.verdict": self.status,
            "gate.reasons": " | ".join(self.reasons),
            "gate.primary_metric": self.primary_metric,
            "gate.champion_version": str(self.champion_version) if self.champion_version else "none",
            "gate.evaluated_at": self.evaluated_at,
        }
        tags |= {f"gate.challenger.{k}": f"{v:.6g}" for k, v in self.challenger_metrics.items()}
        tags |= {f"gate.champion.{k}": f"{v:.6g}" for k, v in (self.champion_metrics or {}).items()}
        return tags

    def to_markdown(self) -> str:
        against = (
            f"champion v{self.champion_version}" if self.champion_version else "no champion (first model)"
        )
        lines = [
            f"# Gate verdict: {self.status.upper()}",
            "",
            f"Pipeline `{self.pipeline}`, challenger v{self.challenger_version} against {against}, "
            f"evaluated {self.evaluated_at} on the challenger's holdout. Primary metric: `{self.primary_metric}`.",
            "",
            "## Checks",
            "",
            "| metric | rule | result | detail |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {c.metric} | {c.rule} | {'pass' if c.passed else 'FAIL'} | {c.message} |" for c in self.checks
        ]
        lines += ["", "## Metrics", "", "| metric | challenger | champion |", "| --- | --- | --- |"]
        for metric in sorted(self.challenger_metrics):
            champion = (self.champion_metrics or {}).get(metric)
            shown = f"{champion:.4f}" if champion is not None else "-"
            lines.append(f"| {metric} | {self.challenger_metrics[metric]:.4f} | {shown} |")
        if self.slices:
            champion_by_label = {s["label"]: s for s in self.champion_slices}
            lines += [
                "",
                "## Slices",
                "",
                "| slice | rows | metric | challenger | champion |",
                "| --- | --- | --- | --- | --- |",
            ]
            for part in self.slices:
                for metric, value in sorted(part["metrics"].items()):
                    other = champion_by_label.get(part["label"], {}).get("metrics", {}).get(metric)
                    shown = f"{other:.4f}" if other is not None else "-"
                    lines.append(f"| {part['label']} | {part['rows']} | {metric} | {value:.4f} | {shown} |")
        return "\n".join(lines) + "\n"


def _rules(gate: Gate) -> list[tuple[MetricRule, bool]]:
    primary = MetricRule(
        metric=gate.primary_metric, threshold=gate.threshold, max_regression=gate.max_regression
    )
    return [(primary, True)] + [(rule, False) for rule in gate.secondary]


def evaluate_gate(
    gate: Gate, challenger: dict[str, float], champion: dict[str, float] | None
) -> tuple[bool, list[Check]]:
    """Apply the gate's rules to two sets of metrics (champion None: the first model, thresholds only)."""
    checks: list[Check] = []
    for rule, _primary in _rules(gate):
        metric = rule.metric
        value = challenger.get(metric)
        if value is None or value != value:  # missing or NaN
            checks.append(
                Check(metric, "available", False, f"{metric} could not be computed for the challenger")
            )
            continue
        if rule.threshold is not None:
            checks.append(threshold_check(metric, value, rule.threshold))
        if champion is not None and rule.max_regression is not None and champion.get(metric) is not None:
            checks.append(regression_check(metric, value, champion[metric], rule.max_regression))
    return all(c.passed for c in checks), checks


def threshold_check(
    metric: str, value: float, threshold: float, *, rule: str = "threshold", where: str = ""
) -> Check:
    """``value`` against its worst acceptable value (a maximum for lower-is-better metrics, else a minimum)."""
    lower = metric in LOWER_IS_BETTER
    ok = value <= threshold if lower else value >= threshold
    bound = "maximum" if lower else "minimum"
    relation = ("within" if ok else "above") if lower else ("meets" if ok else "below")
    return Check(metric, rule, ok, f"{metric} {value:.4f} {relation} the {bound} {threshold:g}{where}")


def regression_check(
    metric: str,
    value: float,
    reference: float,
    max_regression: float,
    *,
    rule: str = "regression",
    where: str = "",
) -> Check:
    """``value`` against the champion's ``reference``: worse by at most ``max_regression`` (metric units)."""
    lower = metric in LOWER_IS_BETTER
    worsening = (value - reference) if lower else (reference - value)
    ok = worsening <= max_regression + 1e-12
    change = "better" if worsening < 0 else ("worse" if worsening > 0 else "equal")
    return Check(
        metric,
        rule,
        ok,
        f"{metric} {value:.4f} vs champion {reference:.4f}{where}: {abs(worsening):.4f} {change}"
        f" (largest allowed regression {max_regression:g})",
    )


def run_gate(config: PipelineConfig, challenger_version: int) -> Verdict:
    """Score challenger and champion on the challenger's holdout, decide, and record the verdict on the version."""
    import mlflow

    from mlops import registry, training

    name = config.name
    challenger = registry.get_version(name, challenger_version)
    holdout = training.load_holdout(challenger.run_id)
    challenger_model = mlflow.sklearn.load_model(f"models:/{name}/{challenger_version}")
    challenger_metrics = training.compute_metrics(config, challenger_model, holdout)

    champion_version = registry.alias_version(name, registry.CHAMPION)
    champion_metrics = None
    champion_model = None
    notes: list[Check] = []
    if champion_version is not None and champion_version != challenger_version:
        try:
            champion_model = mlflow.sklearn.load_model(f"models:/{name}@{registry.CHAMPION}")
            champion_metrics = training.compute_metrics(config, champion_model, holdout)
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
        from mlops import slices

        challenger_slices = slices.slice_metrics(config, challenger_model, holdout)
        if champion_metrics is not None:
            champion_slices = slices.slice_metrics(config, champion_model, holdout)
        checks += slices.evaluate_slices(config.gate, challenger_slices, champion_slices or None)
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
    from mlops import governance

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
