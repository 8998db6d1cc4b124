"""SIGTERM and SIGKILL under load: after a graceful stop, and after a crash and a restart, every request the server
answered is in the inference log, once (the crash-safe journal; without it, a crash loses the buffered rows)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dagtools import parse_dags
from receivers import free_port

from mlops.serving.client import wait_until_ready

pytestmark = pytest.mark.e2e
PIPELINE = "breast_cancer"


async def _load(url: str, records: list[dict[str, Any]], answered: list[str], stop: asyncio.Event) -> int:
    """32 concurrent clients posting until the server goes away; returns how many requests got no answer."""
    unanswered = 0

    async def client(worker: int) -> None:
        nonlocal unanswered
        async with httpx.AsyncClient(timeout=10.0) as http:
            index = worker
            while not stop.is_set():
                request_id = f"w{worker}-{index}"
                try:
                    response = await http.post(
                        f"{url}/predict",
                        json={"records": [records[index % len(records)]]},
                        headers={"X-Request-ID": request_id},
                    )
                except httpx.HTTPError:
                    unanswered += 1  # the server has stopped listening: nothing was answered, nothing to log
                    await asyncio.sleep(0.05)
                    continue
                if response.status_code == 200:
                    answered.append(response.json()["request_id"])
                index += 32

    tasks = [asyncio.create_task(client(worker)) for worker in range(32)]
    await asyncio.gather(*tasks)
    return unanswered


def test_sigterm_under_load_loses_no_answered_request(
    airflow_db: Path, bc_batches: dict[str, Path], mlops_home: Path
) -> None:
    import pandas as pd

    from mlops.data.inference_log import inference_log_uri, read_inference_log

    dag = parse_dags().get_dag(f"{PIPELINE}_training")
    assert (
        dag.test(run_conf={"data_uri": str(bc_batches["first"]), "model": None, "reason": ""}).state
        == "success"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (mlops_home / "server.log").open("ab")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlops"), "serve", PIPELINE, "--port", str(port)],
        stdout=log,
        stderr=log,
        env=os.environ.copy(),
    )
    try:
        assert wait_until_ready(url), (mlops_home / "server.log").read_text()[-3000:]
        records = pd.read_csv(bc_batches["second"]).drop(columns=["diagnosis"]).head(50).to_dict("records")
        answered: list[str] = []

        async def scenario() -> int:
            stop = asyncio.Event()
            load = asyncio.create_task(_load(url, records, answered, stop))
            await asyncio.sleep(3)
            server.send_signal(signal.SIGTERM)
            await asyncio.get_running_loop().run_in_executor(None, server.wait, 60)
            stop.set()
            return await load

        asyncio.run(scenario())
    finally:
        if server.poll() is None:
            server.kill()
        log.close()

    server_log = (mlops_home / "server.log").read_text()
    # uvicorn re-raises the signal once its graceful shutdown is complete.
    assert server.returncode in (0, -signal.SIGTERM), server_log[-3000:]
    assert "Application shutdown complete" in server_log
    assert len(answered) > 100
    logged = read_inference_log(inference_log_uri(PIPELINE), PIPELINE)
    missing = set(answered) - set(logged["request_id"])
    assert not missing, f"{len(missing)} answered requests are not in the inference log"
    assert len(logged) == len(set(logged["request_id"])), "each prediction is logged once"


def _serve(port: int, home: Path, pipelines: Path) -> subprocess.Popen[bytes]:
    log = (home / "server.log").open("ab")
    env = {**os.environ, "MLOPS_PIPELINES_DIR": str(pipelines)}
    command = [str(Path(sys.executable).parent / "mlops"), "serve", PIPELINE, "--port", str(port)]
    server = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    log.close()
    assert wait_until_ready(f"http://127.0.0.1:{port}"), (home / "server.log").read_text()[-3000:]
    return server


def _pipelines(folder: Path, **inference_log: Any) -> Path:
    """A copy of the pipeline whose server buffers for an hour (so that a crash finds rows in memory)."""
    repo = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((repo / "include" / "pipelines" / f"{PIPELINE}.yaml").read_text())
    config.setdefault("serving", {})["inference_log"] = {
        "flush_seconds": 3600,
        "flush_rows": 100_000,
        **inference_log,
    }
    folder.mkdir()
    (folder / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(config))
    return folder


def _crash_under_load(port: int, home: Path, pipelines: Path, records: list[dict[str, Any]]) -> list[str]:
    """Serve under 32 clients, SIGKILL the server mid-load, restart it and stop it; returns the ids answered."""
    server = _serve(port, home, pipelines)
    answered: list[str] = []
    try:

        async def scenario() -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(_load(f"http://127.0.0.1:{port}", records, answered, stop))
            await asyncio.sleep(3)
            server.send_signal(signal.SIGKILL)
            await asyncio.get_running_loop().run_in_executor(None, server.wait, 60)
            stop.set()
            await load

        asyncio.run(scenario())
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == -signal.SIGKILL
    restarted = _serve(port, home, pipelines)  # replays what the journal holds
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(60) in (0, -signal.SIGTERM)
    return answered


def test_sigkill_under_load_loses_no_answered_request_with_the_journal(
    airflow_db: Path, bc_batches: dict[str, Path], mlops_home: Path, tmp_path: Path
) -> None:
    import pandas as pd

    from mlops.data.inference_log import read_inference_log

    dag = parse_dags().get_dag(f"{PIPELINE}_training")
    conf = {"data_uri": str(bc_batches["first"]), "model": None, "reason": ""}
    assert dag.test(run_conf=conf).state == "success"
    records = pd.read_csv(bc_batches["second"]).drop(columns=["diagnosis"]).head(50).to_dict("records")
    port = free_port()

    # Without the journal (what the server did before it), a crash loses every row still buffered.
    unsafe = str(mlops_home / "inference-unsafe")
    answered = _crash_under_load(
        port, mlops_home, _pipelines(tmp_path / "off", journal=False, uri=unsafe), records
    )
    assert len(answered) > 100
    logged = read_inference_log(unsafe, PIPELINE)
    assert len(set(answered) - set(logged["request_id"])) == len(answered)

    safe = str(mlops_home / "inference-safe")
    answered = _crash_under_load(port, mlops_home, _pipelines(tmp_path / "on", uri=safe), records)
    assert len(answered) > 100
    logged = read_inference_log(safe, PIPELINE)
    missing = set(answered) - set(logged["request_id"])
    assert not missing, f"{len(missing)} of {len(answered)} answered requests are not in the inference log"
    assert len(logged) == len(set(logged["request_id"])), "each prediction is logged once"
    assert "were not in the inference log yet" in (mlops_home / "server.log").read_text()
    assert not any((mlops_home / "journal" / PIPELINE).iterdir())  # replayed, written, cleared
