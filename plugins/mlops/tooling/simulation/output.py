"""The files of a simulation: ``simulation.csv`` (a row per window and policy) and ``simulation.png``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from mlops.config import LOWER_IS_BETTER, P_VALUE_METHODS
from mlops.ml.drift import PREDICTION, drift_tests
from mlops.tooling.simulation.results import CSV_COLUMNS, SimulationResult
from mlops.tooling.simulation.settings import DRIFT, NEVER, PERIODIC


def write_csv(result: SimulationResult, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for run in result.runs.values():
            for window in run.windows:
                writer.writerow(window.to_row())
    return path


def plot(result: SimulationResult, path: Path) -> Path:
    """Quality per window of every policy (retrainings marked), and the drift policy's drift over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    onset = result.settings.onset
    colours = {NEVER: "#7f7f7f", PERIODIC: "#1f77b4", DRIFT: "#d62728"}
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, height_ratios=[3, 2])
    for name, run in result.runs.items():
        xs = [w.window for w in run.windows]
        top.plot(
            xs, [w.quality for w in run.windows], marker="o", ms=3, lw=1.4, color=colours[name], label=name
        )
        retrained = [w for w in run.windows if w.retrained]
        if not retrained:
            continue
        top.scatter(
            [w.window for w in retrained],
            [w.quality for w in retrained],
            marker="^" if name == DRIFT else "v",
            s=[70 if w.gate == "promoted" else 40 for w in retrained],
            facecolors=[colours[name] if w.gate == "promoted" else "none" for w in retrained],
            edgecolors=colours[name],
            zorder=3,
            label=f"{name}: retrained after this window (hollow: not promoted)",
        )
    top.set_ylabel(result.metric + (" (lower is better)" if result.metric in LOWER_IS_BETTER else ""))
    top.set_title(
        f"{result.config.name}: feature drift {result.settings.feature_drift:g}, concept drift "
        f"{result.settings.concept_drift:g} from window {onset}"
    )
    top.legend(fontsize=8, ncol=2)
    drift_run = result.runs.get(DRIFT)
    if drift_run is not None:
        xs = [w.window for w in drift_run.windows]
        bottom.plot(
            xs, [_nan(w.drift_share) for w in drift_run.windows], marker="o", ms=3, label="drift share"
        )
        bottom.plot(
            xs,
            [_nan(w.top_effect) for w in drift_run.windows],
            marker="s",
            ms=3,
            label="largest feature effect",
        )
        bottom.plot(
            xs,
            [_nan(w.prediction_drift) for w in drift_run.windows],
            marker="d",
            ms=3,
            label="prediction drift",
        )
        share = result.config.monitoring.drift.share
        bottom.axhline(share, color="#1f77b4", ls=":", lw=1, label=f"share threshold {share:g}")
        test = drift_tests(result.config)[PREDICTION]
        if test.method not in P_VALUE_METHODS:  # a distance: comparable with the scores drawn
            bottom.axhline(
                test.threshold,
                color="#2ca02c",
                ls=":",
                lw=1,
                label=f"prediction {test.method} threshold {test.threshold:g}",
            )
            effective = [_nan(w.prediction_threshold) for w in drift_run.windows]
            if any(t > test.threshold for t in effective if not math.isnan(t)):
                bottom.step(
                    xs,
                    effective,
                    where="mid",
                    color="#2ca02c",
                    lw=1,
                    label="... raised to the window's noise floor",
                )
        for window in drift_run.windows:
            if window.decision in ("warn", "retrain"):
                bottom.axvspan(
                    window.window - 0.4,
                    window.window + 0.4,
                    color="#d62728" if window.decision == "retrain" else "#ff7f0e",
                    alpha=0.18 if window.decision == "retrain" else 0.12,
                    lw=0,
                )
        bottom.set_ylabel("drift policy")
        bottom.legend(fontsize=8, ncol=2, title="shaded: warn (orange), retrain (red)", title_fontsize=8)
    for axis in (top, bottom):
        axis.axvline(onset - 0.5, color="black", ls="--", lw=1)
        axis.grid(alpha=0.3)
    top.annotate("onset", (onset - 0.5, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                 textcoords="offset points", fontsize=8)  # fmt: skip
    bottom.set_xlabel("window (one simulated day)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
