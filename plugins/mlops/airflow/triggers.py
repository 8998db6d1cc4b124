"""Triggers: waits that last minutes happen in Airflow's triggerer, not in a worker slot.

:class:`CanaryTrigger` watches a canary (or shadow) phase: it polls the model server's guard statistics
(``GET /canary``) with an async HTTP client until the phase is over (enough requests to judge, a guard rail
crossed, or the deadline passed, the server unreachable meanwhile), then fires one event that resumes the
deploy task, which judges and promotes or rolls back (:func:`mlops.services.deploy.complete_canary`).
Under ``dag.test()`` Airflow runs the trigger in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = ["CanaryTrigger"]


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
