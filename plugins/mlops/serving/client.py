"""Client-side helpers for a running model server: wait for it, and send it steady live traffic.

Used by the demo, the simulation and the end-to-end tests; handy in a notebook too. :func:`wait_until` is the
one polling loop of the kit (tenacity underneath): the stack's health checks use it too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed


@contextlib.contextmanager
def serve_subprocess(
    pipeline: str, port: int, log_path: Path, *, host: str = "127.0.0.1", stop_timeout: float = 60.0
) -> Iterator[str]:
    """``mlops serve <pipeline> --port <port>`` in a subprocess with this process's environment, its output
    appended to ``log_path``; yields its URL at once (see :func:`wait_until_ready`). On exit it gets SIGTERM,
    so it finishes in-flight requests and flushes its inference log, and is killed after ``stop_timeout``."""
    command = [sys.executable, "-m", "mlops.tooling.cli", "serve", pipeline, "--port", str(port)]
    with log_path.open("ab") as server_log:
        server = subprocess.Popen(command, stdout=server_log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        yield f"http://{host}:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    interval: float,
    *,
    ignore: tuple[type[Exception], ...] = (),
) -> bool:
    """Call ``condition`` every ``interval`` seconds until it returns true (True) or ``timeout`` passes (False).

    An exception of a type in ``ignore`` counts as false (the server is not up yet); any other ends the wait
    and propagates.

    >>> wait_until(lambda: True, timeout=1, interval=0.1)
    True
    """
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda done: not done) | retry_if_exception_type(ignore),
        retry_error_callback=lambda _state: False,
    )
    return bool(retrying(condition))


def wait_until_ready(url: str, timeout: float = 90.0) -> bool:
    """Poll ``GET /ready`` until the server answers 200 (a champion is loaded) or ``timeout`` passes."""
    with httpx.Client(base_url=url, timeout=2) as client:
        return wait_until(
            lambda: client.get("/ready").status_code == 200, timeout, interval=0.3, ignore=(httpx.HTTPError,)
        )


def wait_for_version(url: str, version: int | None, timeout: float = 60.0) -> bool:
    """Poll ``GET /model`` until the server serves ``version`` or ``timeout`` passes."""
    with httpx.Client(base_url=url, timeout=5) as client:
        return wait_until(
            lambda: client.get("/model").json().get("version") == version,
            timeout,
            interval=0.5,
            ignore=(httpx.HTTPError, ValueError),
        )


class LiveTraffic:
    """Steady requests to the model server from a background thread, counting answers per model version."""

    def __init__(self, url: str, records: list[dict[str, Any]]) -> None:
        self.url, self.records = url, records
        self.versions: dict[int, int] = {}
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            index = 0
            while not self._stop.is_set():
                record = self.records[index % len(self.records)]
                index += 1
                began = time.perf_counter()
                try:
                    response = client.post(f"{self.url}/predict", json={"records": [record]})
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}: {response.text[:200]}")
                    else:
                        version = int(response.json()["model_version"])
                        self.versions[version] = self.versions.get(version, 0) + 1
                        self.latencies.append(time.perf_counter() - began)
                except Exception as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(0.02)

    def __enter__(self) -> LiveTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
