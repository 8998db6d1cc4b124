"""One policy replayed through the real model server (:class:`PolicyRunner`), and every policy on one stream
(:func:`run_simulation`)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import PROBABILITY_METRICS
from mlops.tooling.simulation.agreement import evidently_agreement
from mlops.tooling.simulation.client import (
    Replayer,
    free_port,
    model_server,
    simulation_config,
    wait_for_flush,
    write_config,
)
from mlops.tooling.simulation.output import plot, write_csv
from mlops.tooling.simulation.results import PolicyRun, SimulationResult, WindowResult
from mlops.tooling.simulation.settings import DRIFT, PERIODIC, SimulationError, SimulationSettings
from mlops.tooling.simulation.stream import Clock, Stream, make_stream
from mlops.tooling.simulation.training import train_and_deploy

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig
    from mlops.core.policy import Decision, WindowRecord
    from mlops.monitoring.analysis import WindowAnalysis

log = logging.getLogger(__name__)


@contextlib.contextmanager
def policy_environment(home: Path, pipelines_dir: Path) -> Iterator[None]:
    """Point this process (and the server it starts) at a fresh ``MLOPS_HOME``; restore the environment after.

    Every setting is read from the environment when it is used (:mod:`mlops.config.settings`), so this is enough.
    """
    changes = {
        "MLOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "MLOPS_PIPELINES_DIR": str(pipelines_dir),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLOPS_STORE_URI": None,
        "MLOPS_ARTIFACT_ROOT": None,
    }
    saved = {key: os.environ.get(key) for key in changes}
    try:
        for key, value in changes.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def request_records(config: PipelineConfig, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's features as JSON records (the target left out, missing values as null)."""
    from mlops.ml.training import prepare_frame

    inputs = prepare_frame(frame, config)[config.feature_names]
    return [
        {
            key: (None if isinstance(value, float) and math.isnan(value) else value)
            for key, value in row.items()
        }
        for row in inputs.to_dict(orient="records")
    ]


class _Served:
    """The served predictions as a model, so that quality uses :func:`mlops.ml.training.compute_metrics`."""

    def __init__(self, predictions: list[Any]) -> None:
        self.predictions = predictions

    def predict(self, _x: Any) -> Any:
        import numpy as np

        return np.asarray(self.predictions)


def window_quality(
    config: PipelineConfig, frame: pd.DataFrame, predictions: list[Any], model: Callable[[], Any]
) -> float:
    """The primary metric of the served predictions against the true targets (a probability metric needs the
    champion's probabilities, which the server does not return: ``model()`` re-scores the rows then)."""
    from mlops.ml.training import compute_metrics, prepare_frame

    metric = config.gate.primary_metric
    scored = model() if metric in PROBABILITY_METRICS else _Served(predictions)
    return float(compute_metrics(config, scored, prepare_frame(frame, config)).get(metric, math.nan))


class PolicyRunner:
    """Replays the stream under one policy in its own ``MLOPS_HOME``."""

    def __init__(
        self,
        config: PipelineConfig,
        settings: SimulationSettings,
        stream: Stream,
        policy: str,
        progress: Callable[[str], None],
    ) -> None:
        self.settings, self.stream, self.policy, self.say = settings, stream, policy, progress
        self.folder = settings.out / policy
        self.home = self.folder / "home"
        self.config = simulation_config(config, settings.port or free_port())
        self.clock = Clock()
        self.history: list[WindowRecord] = []  # newest last
        self.request_ids: dict[int, list[str]] = {}
        self.timings: dict[str, float] = {}
        self._references: dict[int, pd.DataFrame] = {}
        self._models: dict[int, Any] = {}
        self._holdouts: dict[int, dict[str, float]] = {}
        self._inner: list[float] = []  # time spent in the phases nested in each open one

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to ``phase``, less that of the phases timed inside it."""
        began = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - began
            own = elapsed - self._inner.pop()
            self.timings[phase] = self.timings.get(phase, 0.0) + own
            if self._inner:
                self._inner[-1] += elapsed

    # Cached per champion version: the reference, the model and its holdout metrics.
    def reference(self, version: int) -> pd.DataFrame:
        from mlops.monitoring.store import load_reference

        if version not in self._references:
            self._references[version] = load_reference(self.config, version)
        return self._references[version]

    def model(self, version: int) -> Any:
        from mlops.monitoring.store import load_champion_model

        if version not in self._models:
            self._models[version] = load_champion_model(self.config, version)
        return self._models[version]

    def holdout(self, version: int) -> dict[str, float]:
        from mlops.monitoring.store import holdout_metrics

        if version not in self._holdouts:
            self._holdouts[version] = holdout_metrics(self.config, version)
        return self._holdouts[version]

    def run(self) -> PolicyRun:
        import shutil

        from mlops import registry

        began = time.monotonic()
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.home.mkdir(parents=True)
        with policy_environment(self.home, self.folder / "pipelines"):
            write_config(self.config, self.folder / "pipelines")
            landing = self.home / "landing" / self.config.name
            landing.mkdir(parents=True)
            initial = landing / "initial.csv"
            self.stream.initial.to_csv(initial, index=False)
            with self.timed("first champion"):
                first = train_and_deploy(
                    self.config, str(initial), "simulation: first champion", trigger="manual"
                )
            if not first.promoted or first.version is None:
                raise SimulationError(
                    f"{self.policy}: the first champion was not deployed ({first.status}: {first.detail})"
                )
            self.say(
                f"  [{self.policy}] champion v{first.version} trained on {len(self.stream.initial)} rows"
            )
            results = []
            with (
                self.timed("server start and stop"),
                model_server(self.config, self.folder / "server.log") as url,
            ):
                with Replayer(url) as replayer:
                    for index in range(self.settings.windows):
                        champion = registry.alias_version(self.config.name, registry.CHAMPION)
                        assert champion is not None
                        result = self.window(index, champion, url, replayer)
                        results.append(result)
                        self.say(self.describe(result))
        return PolicyRun(self.policy, results, time.monotonic() - began, first.version, dict(self.timings))

    def describe(self, result: WindowResult) -> str:
        drift = f"drift share {result.drift_share:.2f}" if result.drift_share is not None else "no analysis"
        retrain = ""
        if result.retrained:
            retrain = f"; retrained on {result.retrain_rows} rows: {result.gate}"
            retrain += f" (v{result.new_version})" if result.new_version else ""
        return (
            f"  [{self.policy}] window {result.window:>2}{'*' if result.drifted_stream else ' '} "
            f"v{result.champion_version} {result.metric} {result.quality:.3g}, {drift}, {result.decision}{retrain}"
        )

    def window(self, index: int, champion: int, url: str, replayer: Replayer) -> WindowResult:
        """Serve the window, send the labels that are due, wait for the log, monitor, retrain if due."""
        config, frame = self.config, self.stream.windows[index]
        ids = [f"{self.policy}-w{index:03d}-r{row:05d}" for row in range(len(frame))]
        self.request_ids[index] = ids
        records = request_records(config, frame)
        with self.timed("predict"):
            start = datetime.now(UTC)
            answers = replayer.predict(records, ids)
            end = datetime.now(UTC) + timedelta(microseconds=1)
        self.clock.record(index, start, end)
        labelled = index - self.settings.label_delay
        if labelled >= 0:
            with self.timed("feedback"):
                labels = self.stream.windows[labelled][config.target].tolist()
                replayer.feedback(self.request_ids[labelled], labels)
        with self.timed("flush"):
            wait_for_flush(url)

        served = {int(answer["model_version"]) for answer in answers}
        if served != {champion}:
            raise SimulationError(
                f"window {index}: served by versions {sorted(served)}, champion v{champion}"
            )
        predictions = [answer["predictions"][0] for answer in answers]
        with self.timed("monitoring"):
            quality = window_quality(config, frame, predictions, lambda: self.model(champion))
            result, decision = self.monitor(index, start, end, quality, champion)
        retrain = self.retraining_range(index, decision)
        if retrain is not None:
            with self.timed("retraining"):
                self.retrain(index, result, *retrain)
        return result

    def monitor(
        self, index: int, start: datetime, end: datetime, quality: float, champion: int
    ) -> tuple[WindowResult, Decision]:
        """Read the window back from the inference log, analyze it against the champion's reference, decide."""
        from mlops.core.policy import WindowRecord
        from mlops.monitoring.analysis import analyze_window
        from mlops.monitoring.window import read_window

        config = self.config
        observed = read_window(config, start, end)
        if len(observed) != self.settings.rows_per_window:
            raise SimulationError(
                f"window {index}: {len(observed)} predictions in the inference log, "
                f"{self.settings.rows_per_window} served"
            )
        reference = self.reference(champion)
        labels = int(observed["label"].notna().sum()) if "label" in observed.columns else 0
        scored = labels >= config.monitoring.performance.min_labels
        sim_start, sim_end = Clock.simulated(index)
        analysis = analyze_window(
            config,
            observed,
            reference,
            start=sim_start,
            end=sim_end,
            model_version=champion,
            model=self.model(champion) if scored else None,
            holdout=self.holdout(champion) if scored else None,
        )
        decision = self.decide(analysis)
        self.history.append(WindowRecord(sim_start, sim_end, decision.status, analysis.drifted, champion))
        result = self.result(index, analysis, decision, quality, champion)
        if self.settings.check_agreement and analysis.drift is not None:
            with self.timed("agreement check"):
                result.agreement_compared, result.agreement_disagreements = evidently_agreement(
                    config, observed, reference, analysis
                )
        if self.settings.reports and analysis.status == "analyzed":
            from mlops.monitoring.report import write_report

            with self.timed("reports"):
                folder = self.folder / "reports"
                folder.mkdir(exist_ok=True)
                write_report(config, observed, reference, analysis, str(folder / f"window-{index:03d}.html"))
        return result, decision

    def decide(self, analysis: WindowAnalysis) -> Decision:
        """The monitoring decision: under the config's retraining policy for ``drift``; with retraining off
        for the others (they only alert: ``ok``, ``warn``, ``no_data``)."""
        from mlops.core.policy import decide
        from mlops.monitoring.window import count_labels

        policy = self.config.monitoring.retrain
        if self.policy != DRIFT:
            policy = policy.model_copy(update={"enabled": False})
        count_in_log = count_labels(self.config)

        def count(start: datetime, end: datetime) -> int:  # simulated time in, real time to the log
            span = self.clock.real_range(start, end)
            return count_in_log(*span) if span else 0

        return decide(analysis, list(reversed(self.history)), policy, count)

    def retraining_range(self, index: int, decision: Decision) -> tuple[datetime, datetime, str] | None:
        """The real time range to retrain on after this window, and the training window; None: no retraining."""
        if self.policy == DRIFT and decision.status == "retrain":
            assert decision.retrain_start is not None and decision.retrain_end is not None
            span = self.clock.real_range(decision.retrain_start, decision.retrain_end)
            assert span is not None
            return span[0], span[1], "all" if decision.retrain_data == "all" else "latest"
        if self.policy == PERIODIC and (index + 1) % self.settings.period == 0:
            # The period's windows; with a label delay as long as the period, reach back to labelled ones.
            first = max(0, min(index - self.settings.period + 1, index - self.settings.label_delay))
            return self.clock.real[first][0], self.clock.real[index][1], "latest"
        return None

    def retrain(self, index: int, result: WindowResult, start: datetime, end: datetime, window: str) -> None:
        """Write the labelled live rows as a batch, train, gate, deploy; the server follows the alias."""
        from mlops.errors import MonitoringError
        from mlops.monitoring.window import retrain_batch
        from mlops.serving.client import wait_for_version

        result.retrained = True
        try:
            data_uri = retrain_batch(self.config, start, end, stamp=f"window-{index:03d}")
        except MonitoringError as exc:
            result.gate = "no_labels"
            result.gate_reasons = str(exc)
            return
        reason = f"simulation ({self.policy}): window {index}"
        if self.policy == DRIFT:
            reason = f"{reason}: {'; '.join(result.reasons)}"[:500]
        deployment = train_and_deploy(self.config, data_uri, reason, window, trigger=self.policy)
        result.retrain_rows = deployment.rows
        result.gate = deployment.status
        result.gate_reasons = "" if deployment.promoted else deployment.detail
        result.new_version = deployment.version
        if deployment.promoted and not wait_for_version(self.config.server_url, deployment.version):
            raise SimulationError(f"the model server did not switch to v{deployment.version} within 60 s")

    def result(
        self, index: int, analysis: WindowAnalysis, decision: Decision, quality: float, champion: int
    ) -> WindowResult:
        drift = analysis.drift
        top = max(drift.columns.values(), key=lambda c: c.effect_size) if drift and drift.columns else None
        return WindowResult(
            window=index,
            policy=self.policy,
            drifted_stream=index >= self.stream.onset,
            rows=analysis.rows,
            labelled_rows=analysis.labelled_rows,
            metric=self.config.gate.primary_metric,
            quality=quality,
            drift_share=drift.share if drift else None,
            drifted_features=drift.drifted_columns if drift else [],
            top_feature=top.column if top else None,
            top_effect=top.effect_size if top else None,
            prediction_drift=analysis.prediction.score if analysis.prediction else None,
            prediction_drifted=analysis.prediction.drifted if analysis.prediction else None,
            prediction_threshold=analysis.prediction.threshold if analysis.prediction else None,
            decision=decision.status,
            reasons=list(decision.reasons),
            champion_version=champion,
        )


def run_simulation(
    config: PipelineConfig,
    settings: SimulationSettings,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Replay one stream under every policy and write ``simulation.csv``, ``.md`` and ``.png`` to ``out``.

    Raises:
        SimulationError: invalid settings, or the server or the log failed (the message says where).
    """
    say = progress or (lambda _text: None)
    if problems := settings.problems():
        raise SimulationError("; ".join(problems))
    if config.gate.primary_metric in PROBABILITY_METRICS:
        log.info(
            "%s: quality is re-scored with the champion (the server returns no probabilities)", config.name
        )
    settings = replace(settings, out=settings.out.expanduser().resolve())
    settings.out.mkdir(parents=True, exist_ok=True)
    began, started_at = time.monotonic(), datetime.now(UTC)
    stream = make_stream(config, settings)
    say(
        f"Simulating {config.name}: {settings.windows} windows x {settings.rows_per_window} rows, drift from "
        f"window {settings.onset} (feature {settings.feature_drift:g}, concept {settings.concept_drift:g}); "
        f"policies {', '.join(settings.policies)}; output in {settings.out}"
    )
    runs = {}
    for policy in settings.policies:
        say(f"Policy '{policy}'")
        runs[policy] = PolicyRunner(config, settings, stream, policy, say).run()
    result = SimulationResult(config, settings, runs, time.monotonic() - began, started_at)
    result.csv_path = write_csv(result, settings.out / "simulation.csv")
    result.markdown_path = settings.out / "simulation.md"
    result.markdown_path.write_text(result.summary_markdown(), encoding="utf-8")
    result.plot_path = plot(result, settings.out / "simulation.png")
    return result
