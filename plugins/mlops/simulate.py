"""``mlops simulate``: replay a drifting stream through the real model server and compare retraining policies.

One stream of windows (one simulated day each) is generated once: every window is drawn from the same
distribution as the first champion's training batch until the *onset*, and from a shifted one from then on
(feature drift: the inputs move; concept drift: the relation between inputs and target changes). The same
stream is then replayed under three policies, each in its own fresh ``MLOPS_HOME`` (MLflow store, data store,
inference log) under ``--out``:

``never``     the first champion serves throughout;
``periodic``  retrain every ``--period`` windows on the labelled live rows of that period;
``drift``     retrain when :func:`mlops.monitoring.decide` says so, under the pipeline's retraining policy.

For each policy the first champion is trained on an initial batch through the core functions (ingest,
validate, train, register, gate, deploy: :func:`train_and_deploy`), and ``mlops serve`` runs as a subprocess.
Per window the rows are sent to ``POST /predict`` one record a request (the inference log joins a feedback
label to its request id, so a row needs its own id), the true labels of the window ``--label-delay`` windows
back go to ``POST /feedback``, and once the server has flushed its log, monitoring reads the window back
(:func:`mlops.monitoring.read_window`), analyzes it against the champion's reference and decides. The
quality of a window is the champion's primary metric on the predictions it served, against the true targets.
A retraining writes the labelled live rows as a batch (:func:`mlops.monitoring.retrain_batch`), trains a
challenger, and lets the gate decide; the server follows the alias.

Two clocks: the inference log holds real wall-clock times, so each window is read back by the real
``[start, end)`` recorded while it was replayed; the policy (cooldown, cap per day, the retraining range)
reasons in simulated time, one day per window. :class:`Clock` maps one to the other.

Outputs in ``--out``: ``simulation.csv`` (a row per window and policy), ``simulation.md`` (the summary and the
goals of issue 4) and ``simulation.png`` (quality per window of each policy, and the drift policy's drift).

>>> result = run_simulation(config, SimulationSettings(out=Path("/tmp/sim")), progress=print)  # doctest: +SKIP
>>> result.summary_markdown()                                                                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import LOWER_IS_BETTER, P_VALUE_METHODS, PROBABILITY_METRICS
from mlops.drift import PREDICTION, drift_tests
from mlops.errors import MlopsError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig
    from mlops.gate import Verdict
    from mlops.monitoring import Decision, WindowAnalysis, WindowRecord

log = logging.getLogger(__name__)

NEVER, PERIODIC, DRIFT = "never", "periodic", "drift"
POLICIES: tuple[str, ...] = (NEVER, PERIODIC, DRIFT)
#: Day 0 of the simulated clock (window ``i`` is the day ``SIMULATED_START + i days``).
SIMULATED_START = datetime(2026, 1, 1, tzinfo=UTC)
#: Every window is drawn from the 28 days of sales ending on this date (the generators' own default), so that
#: seasonality does not drift between windows: the only drift is the injected one.
STREAM_DATE = "2026-01-01"
#: How often the server writes its inference log in the simulation (the config's value when smaller).
FLUSH_SECONDS = 0.2
#: Requests in flight at once: the server gathers concurrent requests into one ``predict`` call.
CONCURRENCY = 64
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


class SimulationError(MlopsError):
    """The simulation cannot go on: the server did not start or answer, a window never reached the log."""

    code = "SIMULATION_ERROR"


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate. The defaults are the run whose figures are in ``docs/benchmarks.md``."""

    out: Path
    windows: int = 30
    onset: int = 20
    feature_drift: float = 1.0
    concept_drift: float = 0.5
    rows_per_window: int = 1000
    initial_rows: int = 3000
    period: int = 3
    label_delay: int = 1
    seed: int = 7
    reports: bool = False
    check_agreement: bool = False
    port: int | None = None
    policies: tuple[str, ...] = POLICIES

    def problems(self) -> list[str]:
        found = []
        if self.windows < 1:
            found.append(f"--windows must be at least 1 (got {self.windows})")
        if not 0 <= self.onset <= self.windows:
            found.append(f"--onset must be between 0 and --windows ({self.windows}); got {self.onset}")
        if self.rows_per_window < 1 or self.initial_rows < 1:
            found.append("--rows-per-window and --initial-rows must be at least 1")
        if self.period < 1:
            found.append(f"--period must be at least 1 (got {self.period})")
        if self.label_delay < 0:
            found.append(f"--label-delay must be 0 or more (got {self.label_delay})")
        if self.feature_drift < 0 or self.concept_drift < 0:
            found.append("--feature-drift and --concept-drift must be 0 or more")
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown or not self.policies:
            found.append(f"policies must be among {', '.join(POLICIES)}; got {', '.join(self.policies)}")
        return found


# The stream -----------------------------------------------------------------------------------------------
@dataclass
class Stream:
    """The initial training batch and the windows, with their targets (the same for every policy)."""

    initial: pd.DataFrame
    windows: list[pd.DataFrame]
    onset: int


def make_stream(config: PipelineConfig, settings: SimulationSettings) -> Stream:
    """Generate the initial batch and every window with the pipeline's generator (:mod:`mlops_datagen`).

    Each frame has its own seed and the same calendar (``STREAM_DATE``); windows from ``onset`` on get the
    feature and concept drift.

    Raises:
        SimulationError: the pipeline has no generator.
    """
    from mlops_datagen import PIPELINES, generate_frames

    if config.name not in PIPELINES:
        raise SimulationError(
            f"pipeline '{config.name}' has no data generator; simulate one of: {', '.join(PIPELINES)}"
        )

    def frame(rows: int, seed: int, drifted: bool) -> pd.DataFrame:
        ((_, data),) = generate_frames(
            config.name,
            batches=1,
            rows=rows,
            start_date=STREAM_DATE,
            seed=seed,
            feature_drift=settings.feature_drift if drifted else 0.0,
            concept_drift=settings.concept_drift if drifted else 0.0,
        )
        return data

    base = settings.seed * 1000
    return Stream(
        initial=frame(settings.initial_rows, base, False),
        windows=[
            frame(settings.rows_per_window, base + 1 + i, i >= settings.onset)
            for i in range(settings.windows)
        ],
        onset=settings.onset,
    )


# The two clocks -------------------------------------------------------------------------------------------
@dataclass
class Clock:
    """Each replayed window's simulated ``[start, end)`` (one day) and the real one of its log rows."""

    real: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)

    @staticmethod
    def simulated(window: int) -> tuple[datetime, datetime]:
        start = SIMULATED_START + timedelta(days=window)
        return start, start + timedelta(days=1)

    def record(self, window: int, start: datetime, end: datetime) -> None:
        self.real[window] = (start, end)

    def real_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        """The real time range of the replayed windows that overlap the simulated ``[start, end)``."""
        inside = [
            i
            for i in sorted(self.real)
            if self.simulated(i)[1] > start and self.simulated(i)[0] < end  # overlaps
        ]
        if not inside:
            return None
        return self.real[inside[0]][0], self.real[inside[-1]][1]


# Training and deployment through the core functions -------------------------------------------------------
@dataclass
class Deployment:
    """What became of one training: the version registered, the gate's verdict and whether it serves."""

    status: str  # promoted | rejected | validation_failed | deploy_failed
    version: int | None
    verdict: Verdict | None
    detail: str
    rows: int = 0

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"


def train_and_deploy(
    config: PipelineConfig,
    data_uri: str,
    reason: str,
    training_window: str | None = None,
    *,
    actor: str = "mlops simulate",
    trigger: str = "simulation",
) -> Deployment:
    """What the training DAG does, without Airflow: ingest → validate → train → register → gate → deploy.

    Args:
        config: The pipeline.
        data_uri: The batch to train on (a path or URI).
        reason: Why; kept on the training run and in the promotion's audit entry.
        training_window: Override ``training.window`` (``all`` or ``latest``), as a retraining request does.
        actor: Who deploys (the audit's "by").
        trigger: What asked for this training (tag ``mlops.trigger``).

    Returns:
        The outcome; a batch that fails validation, a challenger the gate rejects and a failed smoke test
        are outcomes, not errors (the champion keeps serving).
    """
    from mlops.batches import ingest_batch, validate_and_file
    from mlops.deploy import DeploymentRejected, deploy_challenger
    from mlops.errors import DataValidationError, PromotionConflict
    from mlops.gate import run_gate
    from mlops.registry import register_version
    from mlops.training import train_model

    batch = ingest_batch(config, data_uri)
    try:
        accepted = validate_and_file(config, batch).batch
    except DataValidationError as exc:
        return Deployment("validation_failed", None, None, str(exc).split(" The batch ")[0])
    if training_window in ("all", "latest"):
        config = config.model_copy(
            update={"training": config.training.model_copy(update={"window": training_window})}
        )
    lineage = {"mlops.trigger_reason": reason, "mlops.trigger": trigger}
    result = train_model(config, accepted, lineage=lineage)
    version = register_version(
        config.name,
        result.model_uri,
        result.run_id,
        {**lineage, "mlops.run_id": result.run_id},
        config.description,
    )
    verdict = run_gate(config, version)
    if not verdict.passed:
        return Deployment("rejected", version, verdict, "; ".join(verdict.reasons), accepted.rows or 0)
    try:
        deploy_challenger(
            config,
            version,
            verdict.champion_version,
            actor=actor,
            reason=reason,
            evidence={"gate": verdict.reasons},
        )
    except (DeploymentRejected, PromotionConflict) as exc:
        return Deployment("deploy_failed", version, verdict, str(exc), accepted.rows or 0)
    return Deployment("promoted", version, verdict, "; ".join(verdict.reasons), accepted.rows or 0)


# The model server -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def simulation_config(config: PipelineConfig, port: int) -> PipelineConfig:
    """The pipeline as the simulation runs it: its server on ``port`` (the deploy step's reload reaches it),
    a short inference-log flush interval, and direct deployment (a canary needs live traffic while the
    deploy step waits, and an approval needs a person)."""
    serving = config.serving
    log_settings = serving.inference_log.model_copy(
        update={"flush_seconds": min(serving.inference_log.flush_seconds, FLUSH_SECONDS)}
    )
    deploy = config.deploy.model_copy(
        update={
            "strategy": "direct",
            "server_url": None,
            "approval": config.deploy.approval.model_copy(update={"required": False}),
        }
    )
    return config.model_copy(
        update={
            "serving": serving.model_copy(
                update={"host": "127.0.0.1", "port": port, "inference_log": log_settings}
            ),
            "deploy": deploy,
        }
    )


def write_config(config: PipelineConfig, folder: Path) -> Path:
    """The config as a YAML file that ``mlops serve`` (in another process) reads."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config.name}.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def model_server(config: PipelineConfig, log_path: Path, timeout: float = 120.0) -> Iterator[str]:
    """``mlops serve`` as a subprocess on ``config.serving.port`` with this process's environment; stopped
    with SIGTERM (it flushes its inference log) on exit. Yields its URL once it is ready."""
    from mlops.serving.client import serve_subprocess, wait_until_ready

    with serve_subprocess(config.name, config.serving.port, log_path, host=config.serving.host) as url:
        if not wait_until_ready(url, timeout=timeout):
            raise SimulationError(
                f"the model server of {config.name} on {url} was not ready within {timeout:g} s; see {log_path}"
            )
        yield url


class Replayer:
    """Sends records to a model server from a pool of threads, one record a request.

    The standard library's ``http.client`` on kept-alive connections (one per thread) costs a fraction of a
    full-featured client per request, which matters at tens of thousands of requests.
    """

    def __init__(self, url: str, concurrency: int = CONCURRENCY) -> None:
        parsed = url.removeprefix("http://").rstrip("/")
        self.host, _, port = parsed.partition(":")
        self.port = int(port or 80)
        self.token = os.environ.get("MLOPS_SERVING_ADMIN_TOKEN")
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="simulate")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
        payload = json.dumps(body, allow_nan=False)
        for attempt in range(6):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self._local.connection = connection
            try:
                connection.request(
                    "POST", path, body=payload, headers={"Content-Type": "application/json", **headers}
                )
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 5:
                    raise
                time.sleep(0.2 * (attempt + 1))
                continue
            if response.status == 503 and attempt < 5:  # not ready, or the log is full: the server says wait
                time.sleep(float(response.getheader("Retry-After") or 1))
                continue
            return response.status, data
        raise AssertionError("unreachable")

    def predict(self, records: Sequence[dict[str, Any]], request_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Answers of ``/predict``, in the order of ``records``.

        Raises:
            SimulationError: a request was refused (the status and the server's message are given).
        """

        def one(item: tuple[dict[str, Any], str]) -> dict[str, Any]:
            record, request_id = item
            status, data = self._post("/predict", {"records": [record]}, {"X-Request-ID": request_id})
            if status != 200:
                raise SimulationError(f"POST /predict for {request_id} answered {status}: {data[:300]!r}")
            return json.loads(data)

        return list(self._pool.map(one, zip(records, request_ids, strict=True)))

    def feedback(self, request_ids: Sequence[str], labels: Sequence[Any]) -> None:
        """Send the true label of each request.

        Raises:
            SimulationError: a label was refused.
        """

        def one(item: tuple[str, Any]) -> None:
            request_id, label = item
            status, data = self._post("/feedback", {"request_id": request_id, "label": label}, {})
            if status != 202:
                raise SimulationError(f"POST /feedback for {request_id} answered {status}: {data[:300]!r}")

        list(self._pool.map(one, zip(request_ids, labels, strict=True)))


def buffered_rows(url: str) -> float | None:
    """Rows the server's inference log holds in memory (``/metrics``), or None when unknown."""
    import httpx

    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("mlops_serving_inference_log_buffered_rows"):
            return float(line.rsplit(" ", 1)[-1])
    return None


def wait_for_flush(url: str, timeout: float = 60.0) -> None:
    """Wait until the server has written every row it answered to its inference log.

    Raises:
        SimulationError: rows are still buffered after ``timeout`` (the log target is failing).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if buffered_rows(url) == 0:
            return
        time.sleep(0.1)
    raise SimulationError(f"the model server at {url} still buffers inference-log rows after {timeout:g} s")


# One policy -----------------------------------------------------------------------------------------------
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


@contextlib.contextmanager
def policy_environment(home: Path, pipelines_dir: Path) -> Iterator[None]:
    """Point this process (and the server it starts) at a fresh ``MLOPS_HOME``; restore the environment after.

    Every setting is read from the environment when it is used (:mod:`mlops.settings`), so this is enough.
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
    from mlops.training import prepare_frame

    inputs = prepare_frame(frame, config)[config.feature_names]
    return [
        {
            key: (None if isinstance(value, float) and math.isnan(value) else value)
            for key, value in row.items()
        }
        for row in inputs.to_dict(orient="records")
    ]


class _Served:
    """The served predictions as a model, so that quality uses :func:`mlops.training.compute_metrics`."""

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
    from mlops.training import compute_metrics, prepare_frame

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
        from mlops.monitoring import load_reference

        if version not in self._references:
            self._references[version] = load_reference(self.config, version)
        return self._references[version]

    def model(self, version: int) -> Any:
        from mlops.monitoring import load_champion_model

        if version not in self._models:
            self._models[version] = load_champion_model(self.config, version)
        return self._models[version]

    def holdout(self, version: int) -> dict[str, float]:
        from mlops.monitoring import holdout_metrics

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
        from mlops.monitoring import WindowRecord, analyze_window, read_window

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
            from mlops.monitoring import write_report

            with self.timed("reports"):
                folder = self.folder / "reports"
                folder.mkdir(exist_ok=True)
                write_report(config, observed, reference, analysis, str(folder / f"window-{index:03d}.html"))
        return result, decision

    def decide(self, analysis: WindowAnalysis) -> Decision:
        """The monitoring decision: under the config's retraining policy for ``drift``; with retraining off
        for the others (they only alert: ``ok``, ``warn``, ``no_data``)."""
        from mlops.monitoring import count_labels, decide

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
        from mlops.monitoring import MonitoringError, retrain_batch
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
            decision=decision.status,
            reasons=list(decision.reasons),
            champion_version=champion,
        )


# Agreement with a plain Evidently report ------------------------------------------------------------------
def evidently_agreement(
    config: PipelineConfig, window: pd.DataFrame, reference: pd.DataFrame, analysis: WindowAnalysis
) -> tuple[int, list[str]]:
    """Run a plain ``Report([DataDriftPreset(per_column_method=..., per_column_threshold=...)])`` with the
    methods and thresholds our analysis used, and compare its per-feature drift decisions with ours.

    Returns:
        The number of features compared and the names of those where the decisions differ.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from mlops.monitoring import as_inputs

    assert analysis.drift is not None
    columns = analysis.drift.columns
    names = list(columns)
    definition = DataDefinition(
        numerical_columns=[n for n in config.numeric_features if n in columns],
        categorical_columns=[n for n in config.categorical_features if n in columns],
    )
    preset = DataDriftPreset(
        columns=names,
        per_column_method={name: column.method for name, column in columns.items()},
        per_column_threshold={name: column.threshold for name, column in columns.items()},
        drift_share=config.monitoring.drift.share,
    )
    snapshot = Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(as_inputs(config, window)[names], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[names], data_definition=definition),
    )
    theirs = plain_decisions(snapshot.dict())
    different = [name for name in names if theirs.get(name) != columns[name].drifted]
    return len(names), different


def plain_decisions(snapshot: dict[str, Any]) -> dict[str, bool]:
    """Per column, whether Evidently's value-drift test failed (drift), from ``Snapshot.dict()``."""
    decisions = {}
    for test in snapshot.get("tests", []):
        params = (test.get("metric_config") or {}).get("params") or {}
        if str(params.get("type", "")).endswith(":ValueDrift") and "column" in params:
            decisions[params["column"]] = test.get("status") == "FAIL"
    return decisions


# The comparison -------------------------------------------------------------------------------------------
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
    goals = []
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
                f"`{drift.categorical.method}` >= {drift.categorical.threshold:g}; a window drifts when >= "
                f"{drift.share:.0%} of the features drift, or the prediction drifts, or live "
                f"`{self.metric}` drops (labels permitting).",
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


# Outputs --------------------------------------------------------------------------------------------------
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
