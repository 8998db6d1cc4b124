"""The model server in a real uvicorn on 127.0.0.1, under 16 concurrent clients, while the champion alias moves
v1 -> v2 -> v3: no request fails, every answer names a version that was champion, no client ever goes back to an
older version, everything served is in the inference log, and after the last swap every answer comes from v3."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn

from mlops import registry
from mlops.config import PipelineConfig, load_config, settings
from mlops.data.batches import ingest_batch
from mlops.data.inference_log import read_inference_log
from mlops.ml import training
from mlops.serving.app import create_app
from mlops.serving.inference_log import InferenceLog

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
NAME = "breast_cancer"
CLIENTS = 16
PHASE_SECONDS = 1.5


@dataclass
class Answer:
    client: int
    started: float
    status: int
    version: int | None
    request_id: str | None


class ServerThread:
    """uvicorn serving ``app`` on a free port of 127.0.0.1 from a background thread."""

    def __init__(self, app: object) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(
            app, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=10
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = (
            True  # what SIGTERM does: stop accepting, finish in-flight, run the shutdown
        )
        self.thread.join(30)
        self.socket.close()
        assert not self.thread.is_alive()


@dataclass
class Store:
    home: Path
    config: PipelineConfig
    records: list[dict[str, float]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A fresh MLOPS_HOME whose MLflow store holds breast_cancer v1 (champion), v2 and v3."""
    from mlops_datagen import generate_batches

    home = tmp_path_factory.mktemp("serving") / "mlops"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        mp.delenv("MLOPS_STORE_URI", raising=False)
        mp.delenv("MLOPS_ARTIFACT_ROOT", raising=False)
        base = load_config(REPO / "include" / "pipelines" / f"{NAME}.yaml")
        config = base.model_copy(
            update={"serving": base.serving.model_copy(update={"poll_interval_seconds": 3600})}
        )
        files = generate_batches(NAME, home / "landing", batches=3, rows=80, seed=11)
        for number, path in enumerate(files, start=1):
            result = training.train_model(config, ingest_batch(config, str(path)))
            assert registry.register_version(NAME, result.model_uri, result.run_id, result.tags) == number
        registry.promote(NAME, 1, None, audit={"reason": "first model"})
        frame = pd.read_csv(files[0]).drop(columns=[config.target])
        yield Store(home, config, [{k: float(v) for k, v in row.items()} for row in frame.to_dict("records")])


def test_the_champion_moves_twice_under_load_without_a_failed_request(store: Store, tmp_path: Path) -> None:
    config, records = store.config, store.records
    log_uri = str(tmp_path / "inference")
    app = create_app(config, inference_log=InferenceLog(NAME, log_uri, flush_seconds=0.5))

    with ServerThread(app) as server:
        answers, swapped_to_v3 = asyncio.run(_traffic_while_swapping(server.url, records))

    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    assert len(answers) > 100
    assert {a.version for a in answers} == {1, 2, 3}
    for client in range(CLIENTS):
        versions = [a.version for a in sorted(answers, key=lambda a: a.started) if a.client == client]
        assert versions == sorted(versions), f"client {client} went back to an older version: {versions}"
    after = [a.version for a in answers if a.started >= swapped_to_v3]
    assert after and set(after) == {3}

    # The lifespan's shutdown closed the inference log: every answer is in it, with the version it named.
    logged = read_inference_log(log_uri, NAME)
    assert len(logged) == len(answers)
    served = {a.request_id: a.version for a in answers}
    assert dict(zip(logged["request_id"], logged["model_version"], strict=True)) == served


async def _traffic_while_swapping(url: str, records: list[dict[str, float]]) -> tuple[list[Answer], float]:
    answers: list[Answer] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=CLIENTS + 2, max_keepalive_connections=CLIENTS + 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        deadline = time.monotonic() + 60
        while (await http.get("/ready")).status_code != 200:
            assert time.monotonic() < deadline, (await http.get("/ready")).text
            await asyncio.sleep(0.1)

        async def client(number: int) -> None:
            await _predict_until(stop, http, records, number, answers)

        async def swap(version: int) -> float:
            await asyncio.to_thread(
                registry.client().set_registered_model_alias, NAME, registry.CHAMPION, version
            )
            token = {"Authorization": f"Bearer {settings.serving_admin_token()}"}  # generated in the home
            response = await http.post("/admin/reload", params={"wait": "true", "timeout": 60}, headers=token)
            assert response.status_code == 204
            assert (await http.get("/model")).json()["version"] == version
            return time.monotonic()

        clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        await asyncio.sleep(PHASE_SECONDS)
        await swap(2)
        await asyncio.sleep(PHASE_SECONDS)
        swapped_to_v3 = await swap(3)
        await asyncio.sleep(PHASE_SECONDS)
        stop.set()
        await asyncio.gather(*clients)
    return answers, swapped_to_v3


def test_sigterm_finishes_the_requests_in_flight_and_writes_the_inference_log(store: Store) -> None:
    """``run()`` in its own process: SIGTERM while 8 clients send; nothing answered is lost, nothing is a 5xx."""
    import os
    import signal
    import subprocess
    import sys

    from mlops.data.inference_log import inference_log_uri

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    code = (
        "from mlops.config import load_config; from mlops.serving.app import run; "
        f"run(load_config({str(REPO / 'include' / 'pipelines' / (NAME + '.yaml'))!r}), '127.0.0.1', {port})"
    )
    env = {
        **os.environ,
        "MLOPS_HOME": str(store.home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{store.home / 'mlflow.db'}",
    }
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        answers = asyncio.run(_traffic_until_sigterm(f"http://127.0.0.1:{port}", store.records, process))
        # uvicorn shuts down gracefully, then re-raises the signal it caught: exit by SIGTERM after a clean shutdown.
        assert process.wait(60) in (0, -signal.SIGTERM)
        errors = process.stderr.read() if process.stderr else ""
        assert "Application shutdown complete" in errors and "Traceback" not in errors, errors
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
    statuses = {a.status for a in answers}
    assert statuses <= {0, 200}, statuses  # 0: refused once the server stopped accepting
    served = {a.request_id: a.version for a in answers if a.status == 200}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(store.home))
        mp.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        mp.delenv("MLOPS_STORE_URI", raising=False)
        assert len(served) > 20 and set(served.values()) == {registry.alias_version(NAME, registry.CHAMPION)}
        logged = read_inference_log(inference_log_uri(NAME, store.config.serving.inference_log.uri), NAME)
    assert dict(zip(logged["request_id"], logged["model_version"], strict=True)) == served


async def _traffic_until_sigterm(url: str, records: list[dict[str, float]], process: object) -> list[Answer]:
    import signal

    answers: list[Answer] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        deadline = time.monotonic() + 90
        while True:
            try:
                if (await http.get("/ready")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the server did not become ready"
            await asyncio.sleep(0.2)

        async def client(number: int) -> None:
            # Refused once the server stops accepting: recorded as status 0, then a short pause.
            await _predict_until(stop, http, records, number, answers, refused_pause=0.01)

        clients = [asyncio.create_task(client(n)) for n in range(8)]
        await asyncio.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)
        stop.set()
        await asyncio.gather(*clients)
    return answers


async def _predict_until(
    stop: asyncio.Event,
    http: httpx.AsyncClient,
    records: list[dict[str, float]],
    number: int,
    answers: list[Answer],
    *,
    refused_pause: float = 0.0,
) -> None:
    """One client: random records to ``/predict`` until ``stop``; every answer (status 0 when the request
    failed in transport) goes to ``answers``."""
    rng = random.Random(number)
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = await http.post("/predict", json={"record": rng.choice(records)})
        except httpx.HTTPError as exc:
            answers.append(Answer(number, started, 0, None, repr(exc)))
            await asyncio.sleep(refused_pause)
            continue
        body = response.json()
        answers.append(
            Answer(number, started, response.status_code, body.get("model_version"), body.get("request_id"))
        )
