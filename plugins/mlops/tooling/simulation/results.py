"""What a simulation measured: a row per window and policy, the summary per policy, the goals of issue 4, and
the Markdown of ``simulation.md``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import LOWER_IS_BETTER
from mlops.tooling.simulation.settings import DRIFT, PERIODIC, SimulationSettings

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

CSV_COLUMNS = (
    "window",
    "policy",
    "drifted_stream",
    "rows",
    "labelled_rows",
    "metric",
    "quality",
    "drift_share",
    "drifted_features",
    "top_feature",
    "top_effect",
    "prediction_drift",
    "prediction_drifted",
    "prediction_threshold",
    "decision",
    "reasons",
    "retrained",
    "retrain_rows",
    "gate",
    "gate_reasons",
    "new_version",
    "champion_version",
    "agreement_compared",
    "agreement_disagreements",
)


@dataclass
class WindowResult:
    """One window of one policy: a row of ``simulation.csv``."""

    window: int
    policy: str
    drifted_stream: bool
    rows: int
    labelled_rows: int
    metric: str
    quality: float
    drift_share: float | None
    drifted_features: list[str]
    top_feature: str | None
    top_effect: float | None
    prediction_drift: float | None
    prediction_drifted: bool | None
    decision: str
    reasons: list[str]
    champion_version: int
    retrained: bool = False
    retrain_rows: int = 0
    gate: str = ""
    gate_reasons: str = ""  # why a retraining did not serve: the gate's failed checks, or the failure
    new_version: int | None = None
    agreement_compared: int | None = None
    agreement_disagreements: list[str] | None = None
    #: The prediction drift's threshold as decided: the configured one, or the noise floor of the window's size.
    prediction_threshold: float | None = None

    def to_row(self) -> dict[str, Any]:
        def number(value: float | None) -> str:
            return "" if value is None or math.isnan(value) else f"{value:.6g}"

        return {
            "window": self.window,
            "policy": self.policy,
            "drifted_stream": int(self.drifted_stream),
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "metric": self.metric,
            "quality": number(self.quality),
            "drift_share": number(self.drift_share),
            "drifted_features": ";".join(self.drifted_features),
            "top_feature": self.top_feature or "",
            "top_effect": number(self.top_effect),
            "prediction_drift": number(self.prediction_drift),
            "prediction_drifted": "" if self.prediction_drifted is None else int(self.prediction_drifted),
            "prediction_threshold": number(self.prediction_threshold),
            "decision": self.decision,
            "reasons": " | ".join(self.reasons),
            "retrained": int(self.retrained),
            "retrain_rows": self.retrain_rows,
            "gate": self.gate,
            "gate_reasons": self.gate_reasons,
            "new_version": self.new_version or "",
            "champion_version": self.champion_version,
            "agreement_compared": "" if self.agreement_compared is None else self.agreement_compared,
            "agreement_disagreements": ""
            if self.agreement_disagreements is None
            else ";".join(self.agreement_disagreements),
        }


@dataclass
class PolicyRun:
    policy: str
    windows: list[WindowResult]
    seconds: float
    first_version: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


@dataclass
class PolicySummary:
    policy: str
    quality_before: float
    quality_after: float
    quality_all: float
    retrains: int
    promoted: int
    first_warn: int | None
    first_retrain: int | None
    false_alarms: int
    seconds: float

    @staticmethod
    def of(run: PolicyRun, onset: int) -> PolicySummary:
        def mean(values: list[float]) -> float:
            kept = [v for v in values if not math.isnan(v)]
            return sum(kept) / len(kept) if kept else math.nan

        windows = run.windows
        alarms = [w.window for w in windows if w.decision in ("warn", "retrain")]
        retrain_decisions = [w.window for w in windows if w.decision == "retrain"]
        return PolicySummary(
            policy=run.policy,
            quality_before=mean([w.quality for w in windows if w.window < onset]),
            quality_after=mean([w.quality for w in windows if w.window >= onset]),
            quality_all=mean([w.quality for w in windows]),
            retrains=sum(w.retrained for w in windows),
            promoted=sum(w.gate == "promoted" for w in windows),
            first_warn=next((i for i in alarms if i >= onset), None),
            first_retrain=next((i for i in retrain_decisions if i >= onset), None),
            false_alarms=sum(1 for i in alarms if i < onset),
            seconds=run.seconds,
        )


@dataclass
class Goal:
    text: str
    measured: str
    met: bool


#: The drift policy "matches" the periodic policy's average quality when it is at most this much worse.
QUALITY_TOLERANCE = 0.02


def evaluate_goals(
    summaries: dict[str, PolicySummary], settings: SimulationSettings, lower_is_better: bool
) -> list[Goal]:
    """The detection goals of issue 4 on this run (those whose policies ran)."""
    goals: list[Goal] = []
    drift, periodic = summaries.get(DRIFT), summaries.get(PERIODIC)
    if drift is None:
        return goals
    goals.append(
        Goal(
            f"no `warn` or `retrain` before the onset, over >= 20 undrifted windows ({settings.onset} here)",
            f"{drift.false_alarms} alarm(s) in windows 0-{settings.onset - 1}",
            drift.false_alarms == 0 and settings.onset >= 20,
        )
    )
    first = drift.first_retrain
    goals.append(
        Goal(
            "`retrain` within 2 windows of the onset",
            f"first retrain decision in window {first} (onset {settings.onset})"
            if first is not None
            else "no retrain decision after the onset",
            first is not None and first - settings.onset <= 2,
        )
    )
    if periodic is not None:
        worse = (drift.quality_all - periodic.quality_all) * (1 if lower_is_better else -1)
        allowed = QUALITY_TOLERANCE * abs(periodic.quality_all)
        goals.append(
            Goal(
                f"drift policy's average quality matches the periodic policy's (at most {QUALITY_TOLERANCE:.0%} "
                "worse)",
                f"{drift.quality_all:.4g} vs {periodic.quality_all:.4g} "
                f"({'better' if worse < 0 else 'worse'} by {abs(worse):.3g})",
                worse <= allowed,
            )
        )
        goals.append(
            Goal(
                "... with at most a third of its retrains",
                f"{drift.retrains} vs {periodic.retrains}",
                drift.retrains * 3 <= periodic.retrains,
            )
        )
    return goals


@dataclass
class SimulationResult:
    config: PipelineConfig
    settings: SimulationSettings
    runs: dict[str, PolicyRun]
    seconds: float
    started_at: datetime
    csv_path: Path | None = None
    markdown_path: Path | None = None
    plot_path: Path | None = None

    @property
    def metric(self) -> str:
        return self.config.gate.primary_metric

    @property
    def summaries(self) -> dict[str, PolicySummary]:
        return {name: PolicySummary.of(run, self.settings.onset) for name, run in self.runs.items()}

    @property
    def goals(self) -> list[Goal]:
        return evaluate_goals(self.summaries, self.settings, self.metric in LOWER_IS_BETTER)

    def agreement(self) -> tuple[int, int, int] | None:
        """(features compared, disagreements, windows) over every window checked, or None if none was."""
        checked = [w for run in self.runs.values() for w in run.windows if w.agreement_compared is not None]
        if not checked:
            return None
        return (
            sum(w.agreement_compared or 0 for w in checked),
            sum(len(w.agreement_disagreements or []) for w in checked),
            len(checked),
        )

    def table_markdown(self) -> str:
        """The per-policy table."""
        better = "lower" if self.metric in LOWER_IS_BETTER else "higher"
        lines = [
            f"| policy | avg {self.metric} before onset | avg {self.metric} from onset | avg {self.metric} "
            "(all windows) | retrains (promoted) | first warn from onset | first retrain from onset "
            "| false alarms before onset | wall time |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for summary in self.summaries.values():
            lines.append(
                f"| {summary.policy} | {summary.quality_before:.3f} | {summary.quality_after:.3f} | "
                f"{summary.quality_all:.3f} | {summary.retrains} ({summary.promoted}) | "
                f"{_window(summary.first_warn)} | {_window(summary.first_retrain)} | {summary.false_alarms} | "
                f"{summary.seconds:.0f} s |"
            )
        lines.append("")
        lines.append(
            f"{self.metric}: {better} is better. Windows are numbered from 0; the onset is window "
            f"{self.settings.onset}."
        )
        return "\n".join(lines)

    def settings_markdown(self) -> str:
        s, policy = self.settings, self.config.monitoring.retrain
        drift = self.config.monitoring.drift
        return "\n".join(
            [
                f"- Pipeline `{self.config.name}` ({self.config.task}, {self.config.model.estimator}); "
                f"quality = `{self.metric}` of the served predictions against the true targets, per window.",
                f"- Stream: {s.windows} windows of {s.rows_per_window} rows (one simulated day each), the first "
                f"champion trained on {s.initial_rows} rows, seed {s.seed}. Drift from window {s.onset} on: "
                f"**feature drift {s.feature_drift:g}**, **concept drift {s.concept_drift:g}** "
                f"({_shift_words(self.config.name, s.feature_drift, s.concept_drift)}).",
                f"- Labels arrive {s.label_delay} window(s) after the predictions (`POST /feedback`).",
                f"- Policies: `never`; `periodic` every {s.period} windows on the labelled rows of that period; "
                f"`drift`: `monitoring.decide` with the config's policy ({policy.consecutive_windows} drifted "
                f"windows in a row, cooldown {policy.cooldown_hours:g} h, >= {policy.min_new_labels} labels, "
                f"<= {policy.max_per_day} a day, `{policy.data}` data). Every retraining goes through the gate.",
                f"- Drift tests: numeric `{drift.numeric.method}` >= {drift.numeric.threshold:g}, categorical "
                f"`{drift.categorical.method}` >= {drift.categorical.threshold:g}"
                + (
                    f", each raised to the noise floor of the window's size where that is higher (mean + "
                    f"{drift.noise_sigmas:g} standard deviations of the test's score between two samples of the "
                    "reference's distribution, `monitoring.drift.noise_sigmas`)"
                    if drift.noise_sigmas > 0
                    else ""
                )
                + f"; a window drifts when >= {drift.share:.0%} of the features drift, or the prediction "
                f"drifts, or live `{self.metric}` drops (labels permitting).",
            ]
        )

    def goals_markdown(self) -> str:
        lines = ["| goal | measured | met |", "| --- | --- | --- |"]
        lines += [f"| {g.text} | {g.measured} | {'yes' if g.met else '**no**'} |" for g in self.goals]
        agreement = self.agreement()
        if agreement is not None:
            compared, different, windows = agreement
            lines.append("")
            lines.append(
                f"Agreement with a plain Evidently `Report([DataDriftPreset(per_column_method=..., "
                f"per_column_threshold=...)])` with the same tests: {compared} per-feature decisions over "
                f"{windows} windows, **{different} disagreement(s)**."
            )
        return "\n".join(lines)

    def timings_markdown(self) -> str:
        """Where each policy's wall time went, by phase."""
        phases: list[str] = []
        for run in self.runs.values():
            phases += [phase for phase in run.timings if phase not in phases]
        lines = [
            "| policy | " + " | ".join(phases) + " | total |",
            "| --- | " + " | ".join("---:" for _ in phases) + " | ---: |",
        ]
        for run in self.runs.values():
            cells = " | ".join(f"{run.timings.get(phase, 0.0):.1f} s" for phase in phases)
            lines.append(f"| {run.policy} | {cells} | {run.seconds:.1f} s |")
        return "\n".join(lines)

    def summary_markdown(self) -> str:
        parts = [
            f"# Simulation: {self.config.name}",
            f"Run {self.started_at:%Y-%m-%d %H:%M} UTC in {self.seconds:.0f} s.",
            self.settings_markdown(),
            self.table_markdown(),
            "## Goals (issue 4)",
            self.goals_markdown(),
            "## Where the time went",
            self.timings_markdown(),
        ]
        return "\n\n".join(parts) + "\n"


def _window(value: int | None) -> str:
    return "-" if value is None else str(value)


def _shift_words(pipeline: str, feature: float, concept: float) -> str:
    if pipeline == "demand_forecast":
        return (
            f"prices +{30 * feature:.0f} %, temperatures +{6 * feature:.0f} °C; elasticities x{1 + min(concept, 1):g}, "
            f"promotion uplift x{1.5 ** (1 - min(concept, 1)) / 1.5:.2f}, store S05 -{40 * min(concept, 1):.0f} % demand"
        )
    return "see mlops_datagen for what the sizes mean"
