"""Client-side helpers for a running model server: wait for it, and send it steady live traffic.

Used by the demo and the end-to-end tests; handy in a notebook too.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx


def wait_until_ready(url: str, timeout: float = 90.0) -> bool:
    """Poll ``GET /ready`` until the server answers 200 (a champion is loaded) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def wait_for_version(url: str, version: int | None, timeout: float = 60.0) -> bool:
    """Poll ``GET /model`` until the server serves ``version`` or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/model", timeout=5).json().get("version") == version:
                return True
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    return False


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
                time.sleep(0.02)

    def __enter__(self) -> LiveTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
