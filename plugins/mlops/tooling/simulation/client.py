"""The model server as the simulation runs it (a subprocess on its own port), and the replay's HTTP client."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

from mlops.config import settings
from mlops.serving.client import serve_subprocess, wait_until, wait_until_ready
from mlops.tooling.simulation.settings import CONCURRENCY, FLUSH_SECONDS, SimulationError

if TYPE_CHECKING:
    from mlops.config import PipelineConfig


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
    with serve_subprocess(config.name, config.serving.port, log_path, host=config.serving.host) as url:
        if not wait_until_ready(url, timeout=timeout):
            raise SimulationError(
                f"the model server of {config.name} on {url} was not ready within {timeout:g} s; see {log_path}"
            )
        yield url


#: Attempts per request: a refused or broken connection, and a 503 (the server is not ready, or its inference log
#: is full and it says to wait), are tried again.
ATTEMPTS = 6


def _pause(state: RetryCallState) -> float:
    """Seconds before the next attempt: what a 503's ``Retry-After`` says (1 without); after a connection
    error, 0.2 s more each time."""
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        return float(outcome.result().headers.get("Retry-After") or 1)
    return 0.2 * state.attempt_number


def _last_outcome(state: RetryCallState) -> httpx.Response:
    """When the attempts run out: the last 503 as the answer, or the last connection error raised."""
    assert state.outcome is not None
    response: httpx.Response = state.outcome.result()
    return response


class Replayer:
    """Sends records to a model server from a pool of threads, one record a request.

    Each thread has its own :class:`httpx.Client` (a kept-alive connection). A request is tried up to
    :data:`ATTEMPTS` times on a connection error or a 503; then the last 503 is returned, or the last
    :class:`httpx.TransportError` raised.

    The ids the simulation gives its requests go as ``X-Request-ID`` (the server's correlation id); the
    server's own ``request_id`` of each answer is remembered, and :meth:`feedback` labels by it, with the
    feedback token (:func:`mlops.config.settings.serving_feedback_token`).
    """

    def __init__(
        self, url: str, concurrency: int = CONCURRENCY, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.transport = transport  # None: the network (another transport serves tests)
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="simulate")
        self._server_ids: dict[str, str] = {}  # the simulation's request id -> the server's

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for client in self._clients:
            client.close()

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _client(self) -> httpx.Client:
        """This thread's client."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(
                base_url=self.url, timeout=60, transport=self.transport
            )
            with self._clients_lock:
                self._clients.append(client)
        return client

    @retry(
        stop=stop_after_attempt(ATTEMPTS),
        wait=_pause,
        retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(lambda r: r.status_code == 503),
        retry_error_callback=_last_outcome,
    )
    def _post(self, path: str, payload: bytes, headers: dict[str, str]) -> httpx.Response:
        return self._client().post(
            path, content=payload, headers={"Content-Type": "application/json", **headers}
        )

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        """``POST path`` with ``body`` as JSON (NaN refused), retried as the class says."""
        return self._post(path, json.dumps(body, allow_nan=False).encode(), headers or {})

    def predict(self, records: Sequence[dict[str, Any]], request_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Answers of ``/predict``, in the order of ``records``.

        Raises:
            SimulationError: a request was refused (the status and the server's message are given).
        """

        def one(item: tuple[dict[str, Any], str]) -> dict[str, Any]:
            record, request_id = item
            response = self.post("/predict", {"records": [record]}, {"X-Request-ID": request_id})
            if response.status_code != 200:
                raise SimulationError(
                    f"POST /predict for {request_id} answered {response.status_code}: {response.content[:300]!r}"
                )
            answer: dict[str, Any] = response.json()
            self._server_ids[request_id] = str(answer.get("request_id", request_id))
            return answer

        return list(self._pool.map(one, zip(records, request_ids, strict=True)))

    def feedback(self, request_ids: Sequence[str], labels: Sequence[Any]) -> None:
        """Send the true label of each request.

        Raises:
            SimulationError: a label was refused.
        """

        token = settings.serving_feedback_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        def one(item: tuple[str, Any]) -> None:
            request_id, label = item
            server_id = self._server_ids.get(request_id, request_id)
            response = self.post("/feedback", {"request_id": server_id, "label": label}, headers)
            if response.status_code != 202:
                raise SimulationError(
                    f"POST /feedback for {request_id} answered {response.status_code}: {response.content[:300]!r}"
                )

        list(self._pool.map(one, zip(request_ids, labels, strict=True)))


#: The gauge of rows the server's inference log holds in memory (:mod:`mlops.serving.metrics`).
BUFFERED_ROWS = "mlops_serving_inference_log_buffered_rows"


def buffered_rows(url: str) -> float | None:
    """Rows the server's inference log holds in memory (``/metrics``), or None when unknown."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    return metric_value(text, BUFFERED_ROWS)


def metric_value(exposition: str, name: str) -> float | None:
    """The value of metric ``name``'s first sample in Prometheus text, or None when it has none.

    >>> metric_value("# TYPE rows gauge\\nrows 3.0\\n", "rows")
    3.0
    """
    for family in text_string_to_metric_families(exposition):
        if family.name == name and family.samples:
            return family.samples[0].value
    return None


def wait_for_flush(url: str, timeout: float = 60.0) -> None:
    """Wait until the server has written every row it answered to its inference log.

    Raises:
        SimulationError: rows are still buffered after ``timeout`` (the log target is failing).
    """
    if not wait_until(lambda: buffered_rows(url) == 0, timeout, interval=0.1):
        raise SimulationError(
            f"the model server at {url} still buffers inference-log rows after {timeout:g} s"
        )
