"""What the model server measures: Prometheus series (``GET /metrics``) and the canary's guard statistics.

Every app gets its own ``CollectorRegistry`` (never the process-global one), so two apps in one process, as in
tests, do not share or clash. Series (prefix ``mlops_serving_``):

=============================================  =====================================================
``http_requests_total{path,method,status}``    every HTTP request, by route template and status
``http_request_duration_seconds{path}``        latency histogram
``errors_total{kind}``                         input, unavailable, log_full, model, internal
``predictions_total{route,version}``           rows scored, by route (champion, canary, shadow)
``batch_rows{alias}``                          rows per ``predict`` call (the micro-batches)
``out_of_range_rows_total{action}``            rows outside the config's bounds (flag, reject)
``model_version{alias}``                       version serving per alias (absent when none)
``model_ready``                                1 when a champion is loaded and smoke-tested
``model_load_failures_total{alias}``           versions that failed to load or their smoke test
``model_loads_total{alias}``                   versions swapped in
``model_load_seconds{alias}``                  how long the serving version took to load
``inference_log_buffered_rows``                rows waiting to be written (and the log's other counters)
=============================================  =====================================================
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter as CountDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

PREFIX = "mlops_serving"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
ERROR_KINDS = ("input", "unavailable", "log_full", "model", "internal")


class ServerMetrics:
    """The Prometheus series of one app, in a registry of its own."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests by route template, method and status.",
            ["path", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            f"{PREFIX}_errors",
            "Failed predictions by kind: input (4xx for the body), unavailable (no model), "
            "log_full (inference log full), model (the model raised), internal.",
            ["kind"],
            registry=self.registry,
        )
        self.predictions = Counter(
            f"{PREFIX}_predictions",
            "Rows scored, by route (champion, canary, shadow) and model version.",
            ["route", "version"],
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            f"{PREFIX}_batch_rows",
            "Rows per model predict call (one micro-batch), by alias.",
            ["alias"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.out_of_range = Counter(
            f"{PREFIX}_out_of_range_rows",
            "Rows with a value outside the config's bounds (serving.out_of_range), by action: flag, reject.",
            ["action"],
            registry=self.registry,
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind)  # present from the start, at 0
        self._children: dict[tuple[str, ...], Any] = {}

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def observe_http(self, path: str, method: str, status: int, seconds: float) -> None:
        key = (path, method, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.http_requests.labels(*key)
        child.inc()
        latency = self._children.get((path,))
        if latency is None:
            latency = self._children[(path,)] = self.http_latency.labels(path)
        latency.observe(seconds)

    def observe_out_of_range(self, action: str, rows: int) -> None:
        self.out_of_range.labels(action).inc(rows)

    def observe_batch(self, alias: str, rows: int) -> None:
        self.batch_rows.labels(alias).observe(rows)

    def observe_predictions(self, route: str, version: int, rows: int) -> None:
        self.predictions.labels(route, str(version)).inc(rows)

    def add_state(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Series computed when scraped (model versions, load failures, the inference log's buffer)."""
        self.registry.register(_StateCollector(collect))

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector:
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time: nothing to check for name clashes up front


def state_metrics(holder: Any, inference_log: Any) -> Callable[[], Iterable[Metric]]:
    """A collect function for the holder's models and the inference log's counters."""

    def collect() -> Iterable[Metric]:
        version = GaugeMetricFamily(
            f"{PREFIX}_model_version", "Model version serving, by alias.", labels=["alias"]
        )
        seconds = GaugeMetricFamily(
            f"{PREFIX}_model_load_seconds",
            "Seconds the serving version took to load and smoke-test.",
            labels=["alias"],
        )
        for alias in ("champion", "canary"):
            loaded = holder.current(alias)
            if loaded is not None:
                version.add_metric([alias], loaded.version)
                seconds.add_metric([alias], loaded.load_seconds)
        yield version
        yield seconds
        ready = GaugeMetricFamily(f"{PREFIX}_model_ready", "1 when a champion is loaded and smoke-tested.")
        ready.add_metric([], 1.0 if holder.champion is not None else 0.0)
        yield ready
        failures = CounterMetricFamily(
            f"{PREFIX}_model_load_failures",
            "Versions that failed to load or their smoke test, by alias.",
            labels=["alias"],
        )
        for alias, count in sorted(holder.load_failures.items()):
            failures.add_metric([alias], count)
        yield failures
        loads = CounterMetricFamily(
            f"{PREFIX}_model_loads",
            "Versions loaded, smoke-tested and swapped in, by alias.",
            labels=["alias"],
        )
        for alias, count in sorted(holder.loads.items()):
            loads.add_metric([alias], count)
        yield loads
        if inference_log is None:
            return
        try:
            stats = inference_log.stats()
        except Exception:
            return
        buffered = GaugeMetricFamily(
            f"{PREFIX}_inference_log_buffered_rows", "Rows of the inference log waiting to be written."
        )
        buffered.add_metric([], float(stats.get("buffered_rows", 0) or 0))
        yield buffered
        for key, value in sorted(stats.items()):
            if key == "buffered_rows" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            gauge = GaugeMetricFamily(f"{PREFIX}_inference_log_{key}", f"Inference log: {key}.")
            gauge.add_metric([], float(value))
            yield gauge

    return collect


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by route template (no per-path series)."""

    def __init__(self, app: Any, *, metrics: ServerMetrics, paths: Callable[[], set[str]]) -> None:
        self.app = app
        self.metrics = metrics
        self._paths = paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = scope.get("path", "")
            label = path if path in self._paths() else "other"
            self.metrics.observe_http(label, scope.get("method", ""), status, time.perf_counter() - started)


# Guard statistics of a canary (or shadow) phase ------------------------------------------------------------------
class RouteStats:
    """Requests, errors, latency quantiles (a bounded reservoir) and the prediction distribution of one route.

    Args:
        classification: Count predicted classes (else: mean and standard deviation of the predictions).
        reservoir: Latencies kept for the quantiles (uniform reservoir sampling beyond that).
    """

    def __init__(self, *, classification: bool, reservoir: int = 4096, seed: int = 0) -> None:
        self.classification = classification
        self.requests = 0
        self.errors = 0
        self.rows = 0
        self._size = reservoir
        self._latencies: list[float] = []
        self._seen = 0
        self._random = random.Random(seed)
        self._classes: CountDict[str] = CountDict()
        self._mean = 0.0
        self._m2 = 0.0
        self._numeric_rows = 0
        self._lock = threading.Lock()

    def observe(self, seconds: float, predictions: list[Any] | None = None, *, error: bool = False) -> None:
        with self._lock:
            self.requests += 1
            if error:
                self.errors += 1
            self._seen += 1
            if len(self._latencies) < self._size:
                self._latencies.append(seconds)
            else:
                slot = self._random.randrange(self._seen)
                if slot < self._size:
                    self._latencies[slot] = seconds
            if predictions:
                self._add_predictions(predictions)

    def _add_predictions(self, predictions: list[Any]) -> None:
        self.rows += len(predictions)
        if self.classification:
            self._classes.update(str(p) for p in predictions)
            return
        for value in predictions:  # Welford: stable running mean and variance
            if isinstance(value, (int, float)) and value == value:
                self._numeric_rows += 1
                delta = value - self._mean
                self._mean += delta / self._numeric_rows
                self._m2 += delta * (value - self._mean)

    def snapshot(self) -> dict[str, Any]:
        import numpy as np

        with self._lock:
            latencies = np.array(self._latencies) * 1000.0
            result: dict[str, Any] = {
                "requests": self.requests,
                "errors": self.errors,
                "error_rate": self.errors / self.requests if self.requests else 0.0,
                "rows": self.rows,
                "p50_ms": round(float(np.percentile(latencies, 50)), 3) if len(latencies) else None,
                "p99_ms": round(float(np.percentile(latencies, 99)), 3) if len(latencies) else None,
            }
            if self.classification:
                result["class_counts"] = dict(sorted(self._classes.items()))
                result["mean"] = result["std"] = None
            else:
                n = self._numeric_rows
                result["class_counts"] = None
                result["mean"] = self._mean if n else None
                result["std"] = (self._m2 / (n - 1)) ** 0.5 if n > 1 else (0.0 if n else None)
            return result


class CanaryGuard:
    """The live statistics of one canary phase: one champion and one canary version, since the canary loaded."""

    def __init__(
        self,
        *,
        strategy: str,
        champion_version: int,
        canary_version: int,
        since: datetime | None,
        classification: bool,
        traffic_share: float,
    ) -> None:
        self.strategy = strategy
        self.champion_version = champion_version
        self.canary_version = canary_version
        self.since = since or datetime.now(UTC)
        self.traffic_share = traffic_share
        self.champion = RouteStats(classification=classification, seed=1)
        self.canary = RouteStats(classification=classification, seed=2)

    def route(self, name: str) -> RouteStats:
        return self.canary if name in ("canary", "shadow") else self.champion

    def snapshot(self) -> dict[str, Any]:
        return {
            "canary_version": self.canary_version,
            "champion_version": self.champion_version,
            "strategy": self.strategy,
            "traffic_share": self.traffic_share if self.strategy == "canary" else None,
            "since": self.since.isoformat(timespec="milliseconds"),
            "champion": self.champion.snapshot(),
            "canary": self.canary.snapshot(),
        }
