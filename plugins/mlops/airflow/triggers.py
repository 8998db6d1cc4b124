"""Triggers: waits that last minutes happen in Airflow's triggerer, not in a worker slot.

:class:`CanaryTrigger` watches a canary (or shadow) phase: it polls the model server's guard statistics
(``GET /canary``) with an async HTTP client until the phase is over (enough requests to judge, a guard rail
crossed, or the deadline passed, the server unreachable meanwhile), then fires one event that resumes the
deploy task, which judges and promotes or rolls back (:func:`mlops.services.deploy.complete_canary`).

:func:`batch_arrival_trigger` is what ``wait_for_batch`` (:mod:`mlops.airflow.batch_wait`) defers to until
the run's batch lands: the standard provider's ``FileTrigger`` for a local file, :class:`S3BatchTrigger` for
an ``s3://`` object. Under ``dag.test()`` Airflow runs the triggers in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = ["CanaryTrigger", "S3BatchTrigger", "batch_arrival_trigger"]


class CanaryTrigger(BaseTrigger):
    """Watch a canary phase until it can be judged; fire one event with what was seen last.

    The event's payload: ``phase`` (as given), ``stats`` (the last guard statistics of this canary, or None),
    ``elapsed_seconds``, ``reasons`` (how the watch saw the phase end), ``problem`` (the server's last
    failure to answer, if any) and, only when the watch itself broke, ``error``.

    Args:
        phase: The phase, as :meth:`mlops.services.deploy.CanaryPhase.to_dict` gives it (it carries the server
            URL, the version, the start time and the guard rails; it is handed back in the event).
        poll_seconds: Pause between two looks at the server.
        request_timeout: Timeout of one request to the server, in seconds.
    """

    def __init__(
        self, phase: dict[str, Any], poll_seconds: float = 2.0, request_timeout: float = 10.0
    ) -> None:
        super().__init__()
        self.phase = phase
        self.poll_seconds = poll_seconds
        self.request_timeout = request_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"phase": self.phase, "poll_seconds": self.poll_seconds, "request_timeout": self.request_timeout},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlops.services.deploy import CanaryPhase, admin_headers, canary_progress

        phase = CanaryPhase.from_dict(self.phase)
        stats: dict[str, Any] | None = None
        problem: str | None = None
        try:
            import httpx

            async with httpx.AsyncClient(timeout=self.request_timeout, headers=admin_headers()) as client:
                while True:
                    await asyncio.sleep(self.poll_seconds)
                    stats, problem = await self._look(client, phase.server_url)
                    elapsed = time.time() - phase.started_at
                    decision = canary_progress(phase, stats, elapsed)
                    if decision.action != "wait":
                        self.log.info("Canary v%s: %s (%s)", phase.version, decision.action, decision.reasons)
                        yield self._event(stats, elapsed, decision.reasons, problem)
                        return
        except Exception as exc:  # the deploy task must resume to end the phase (remove the alias) either way
            self.log.exception("Watching the canary v%s failed", phase.version)
            yield self._event(
                stats, time.time() - phase.started_at, [], problem, f"{type(exc).__name__}: {exc}"
            )

    async def _look(self, client: Any, server_url: str) -> tuple[dict[str, Any] | None, str | None]:
        """The guard statistics, or None with why (an unreachable server is retried until the deadline)."""
        try:
            response = await client.get(f"{server_url}/canary")
        except Exception as exc:
            self.log.warning("Model server at %s did not answer /canary: %s", server_url, exc)
            return None, f"{type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return None, f"GET /canary answered {response.status_code}"
        try:
            return response.json(), None
        except ValueError as exc:
            return None, f"GET /canary answered no JSON ({exc})"

    def _event(
        self,
        stats: dict[str, Any] | None,
        elapsed: float,
        reasons: list[str],
        problem: str | None,
        error: str | None = None,
    ) -> TriggerEvent:
        payload: dict[str, Any] = {
            "phase": self.phase,
            "stats": stats,
            "elapsed_seconds": elapsed,
            "reasons": reasons,
            "problem": problem,
        }
        if error:
            payload["error"] = error
        return TriggerEvent(payload)


class S3BatchTrigger(BaseTrigger):
    """Fire once the object at an ``s3://`` URI exists; look every ``poke_interval`` seconds.

    The Amazon provider's ``S3KeyTrigger`` would do the same, but it needs ``aiobotocore``, which does not
    install beside the botocore that boto3 is pinned with (``constraints.txt``). This one asks our storage
    layer (boto3, in a thread), so it reads S3 exactly as ``ingest`` will: the same endpoint and credentials
    (``AWS_ENDPOINT_URL``, ``AWS_*``). An error while looking (S3 unreachable) is logged and looked at again
    at the next poke: the task's deferral timeout bounds the wait.

    Args:
        uri: The ``s3://bucket/key`` of the batch.
        poke_interval: Seconds between two looks.
    """

    def __init__(self, uri: str, poke_interval: float = 60.0) -> None:
        super().__init__()
        self.uri = uri
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"uri": self.uri, "poke_interval": self.poke_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                if await asyncio.to_thread(_exists, self.uri):
                    self.log.info("Batch %s arrived", self.uri)
                    yield TriggerEvent({"status": "found", "uri": self.uri})
                    return
            except Exception as exc:  # S3 down for a moment: the deferral's timeout bounds the wait
                self.log.warning("Could not look for %s (%s); looking again", self.uri, exc)
            await asyncio.sleep(self.poke_interval)


def _exists(uri: str) -> bool:
    """Whether the object exists (in a thread: the import and boto3's client would block the event loop)."""
    from mlops.data import storage

    return storage.exists(uri)


def batch_arrival_trigger(uri: str, poke_interval: float) -> BaseTrigger:
    """The trigger that fires when the batch at ``uri`` (``s3://`` or a local ``file://`` URI) exists."""
    if uri.startswith("s3://"):
        return S3BatchTrigger(uri, poke_interval=poke_interval)
    import glob
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    from airflow.providers.standard.triggers.file import FileTrigger

    path = unquote(urlparse(uri).path) if uri.startswith("file://") else str(Path(uri))
    # FileTrigger takes a glob: escape the path so that a '[' or '*' in a file name is taken literally.
    return FileTrigger(glob.escape(path), poke_interval=poke_interval)
