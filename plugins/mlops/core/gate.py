"""The gate's verdict (pure): may this challenger replace the champion, given both models' metrics?

:func:`evaluate_gate` applies the thresholds and regression rules of ``gate`` to two sets of metrics; the
:class:`Verdict` carries the checks and renders itself as tags, Markdown and JSON. The I/O around it (loading
the models, scoring the holdout, recording the verdict) is :func:`mlops.services.gate.run_gate`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.config import LOWER_IS_BETTER, Gate, MetricRule

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
    #: Per-slice metrics (``mlops.core.slices.SliceMetrics`` as dicts) of the challenger and the champion.
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
