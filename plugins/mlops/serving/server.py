"""The model server's state: the models, one micro-batcher per route, the inference log, metrics, the canary
guard, and what a request does with them (route, log, shadow)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi.concurrency import run_in_threadpool

from mlops.config import settings
from mlops.serving.batcher import MicroBatcher, NoModelError
from mlops.serving.feedback import AnsweredIds, LabelRule, row_ids
from mlops.serving.holder import CANARY, CHAMPION, LoadedModel, ModelHolder
from mlops.serving.inputs import InputSchema, ParsedInput
from mlops.serving.metrics import CanaryGuard, ServerMetrics, state_metrics
from mlops.serving.ranges import RangeCheck

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)

#: Shadow scorings waiting at most; beyond, copies are dropped (counted) rather than pile up in memory.
MAX_PENDING_SHADOWS = 1000


# The server's state ---------------------------------------------------------------------------------------------
class ModelServer:
    """Everything one app holds: the models, the batchers, the inference log, metrics and canary statistics."""

    def __init__(
        self, config: PipelineConfig, *, inference_log: Any, holder: ModelHolder, start_polling: bool
    ) -> None:
        self.config = config
        self.holder = holder
        self.inference_log = inference_log
        self.start_polling = start_polling
        self.strategy = config.deploy.strategy
        self.schema = InputSchema.from_config(config)
        self.metrics = ServerMetrics(config.name)
        self.metrics.add_state(state_metrics(holder, inference_log))
        serving = config.serving

        def batcher(get_model: Callable[[], LoadedModel | None], alias: str) -> MicroBatcher:
            return MicroBatcher(
                get_model,
                max_rows=serving.max_batch_rows,
                wait_ms=serving.batch_wait_ms,
                alias=alias,
                metrics=self.metrics,
            )

        self.batchers = {
            CHAMPION: batcher(lambda: holder.champion, CHAMPION),
            # A canary request whose canary went away meanwhile is answered by the champion.
            CANARY: batcher(lambda: holder.canary or holder.champion, CANARY),
            "shadow": batcher(lambda: holder.canary, "shadow"),
        }
        self._guard: CanaryGuard | None = None
        self._shadows: set[asyncio.Task] = set()
        self._started = False
        #: The requests answered (for feedback), what a label may be, and the config's input bounds.
        self.answered = AnsweredIds(serving.answered_ids)
        self.labels = LabelRule(config)
        self.ranges = RangeCheck.from_config(config)
        had_token = settings.serving_admin_token() is not None
        self.admin_token = settings.serving_admin_token(create=True)
        self.feedback_token = settings.serving_feedback_token()
        if not had_token:
            log.warning(
                "No %s set: the admin and feedback token was generated into %s (mode 600); clients on this "
                "machine with the same MLOPS_HOME read it from there",
                settings.SERVING_ADMIN_TOKEN_ENV,
                settings.serving_token_file(),
            )

    def ensure_started(self) -> None:
        """Start the inference log's writer and the alias polling (once; also on the first request, for ASGI
        clients that do not run the lifespan)."""
        if self._started:
            return
        self._started = True
        if self.inference_log is not None and hasattr(self.inference_log, "start"):
            self.inference_log.start()
            self.answered.restore(
                getattr(self.inference_log, "replayed_predictions", ()),
                getattr(self.inference_log, "replayed_feedback", ()),
            )
        if self.start_polling:
            self.holder.start_polling()

    async def close(self, timeout: float = 30.0) -> None:
        """Stop polling and batching, then write what the inference log still holds."""
        self.holder.stop()
        for task in list(self._shadows):
            task.cancel()
        for batcher in self.batchers.values():
            await batcher.close()
        if self.inference_log is not None:
            await run_in_threadpool(self.inference_log.close, timeout)

    def route_for(self, request_id: str) -> str:
        """``canary`` for a stable share of request ids while a canary serves (strategy canary), else champion."""
        if self.strategy != "canary" or self.holder.canary is None:
            return CHAMPION
        digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
        return (
            CANARY
            if int.from_bytes(digest, "big") / 2**64 < self.config.deploy.canary.traffic_share
            else CHAMPION
        )

    def guard(self) -> CanaryGuard | None:
        """The statistics of the current canary phase, started afresh when the canary or the champion changes."""
        champion, canary = self.holder.champion, self.holder.canary
        if self.strategy not in ("canary", "shadow") or champion is None or canary is None:
            return None
        guard = self._guard
        if guard is None or (guard.champion_version, guard.canary_version, guard.since) != (
            champion.version,
            canary.version,
            canary.loaded_at,
        ):
            guard = self._guard = CanaryGuard(
                strategy=self.strategy,
                champion_version=champion.version,
                canary_version=canary.version,
                since=canary.loaded_at,
                classification=canary.is_classifier or self.config.task == "classification",
                traffic_share=self.config.deploy.canary.traffic_share,
            )
        return guard

    def not_ready_reason(self) -> str:
        holder = self.holder
        error = holder.errors.get(CHAMPION)
        loading = [v for alias, v in holder.loading() if alias == CHAMPION]
        if loading:
            return f"loading '{self.config.name}' v{loading[-1]}" + (
                f"; before that: {error.message}" if error else ""
            )
        if error is not None:
            return error.message
        if holder.checked_at is None:
            return "the aliases have not been read yet" + (
                "" if self.start_polling else " (polling is off: POST /admin/reload reads them)"
            )
        return f"no champion yet: alias '{CHAMPION}' of registered model '{self.config.name}' does not exist"

    def out_of_range(self, parsed: ParsedInput, model: LoadedModel | None = None) -> list[int]:
        """The rows outside the input ranges (the serving version's: its reference's and the config's bounds;
        else the config's alone) to flag; raises the 422 when ``serving.out_of_range`` is reject."""
        ranges = model.ranges if model is not None and model.ranges is not None else self.ranges
        rows, problem = ranges.check(parsed)
        if problem is not None and self.config.serving.out_of_range == "reject":
            self.metrics.observe_out_of_range("reject", len(rows))
            raise problem
        return rows

    def log_rows(
        self,
        parsed: ParsedInput,
        predictions: list[Any],
        request_id: str,
        model: LoadedModel,
        route: str,
        *,
        correlation_id: str | None = None,
        flagged: Sequence[int] = (),
    ) -> int | None:
        """Log each row under its own address (:func:`mlops.serving.feedback.row_ids`), with the client's
        correlation id and whether it was out of range; returns the journal ticket (:meth:`durable`)."""
        if self.inference_log is None:
            return None
        now = datetime.now(UTC)
        marked = set(flagged)
        return self.inference_log.log_predictions(
            [
                {
                    "time": now,
                    "request_id": row_id,
                    "model_version": model.version,
                    "inputs": record,
                    "prediction": prediction,
                    "route": route,
                    "correlation_id": correlation_id,
                    "out_of_range": row in marked,
                }
                for row, (row_id, record, prediction) in enumerate(
                    zip(
                        row_ids(request_id, parsed.rows), parsed.canonical_records(), predictions, strict=True
                    )
                )
            ]
        )

    async def durable(self, ticket: int | None) -> None:
        """Wait until the rows of ``ticket`` are in the inference log's journal on disk (see
        :mod:`mlops.serving.journal`); raises ``JournalError`` when they cannot be."""
        wait = getattr(self.inference_log, "wait_durable", None)
        if ticket is not None and wait is not None:
            await wait(ticket)

    def shadow(self, parsed: ParsedInput, request_id: str, correlation_id: str | None = None) -> None:
        """Score a copy with the canary in the background; its result is logged (route shadow), never returned."""
        if len(self._shadows) >= MAX_PENDING_SHADOWS:
            self.metrics.error("shadow_dropped")
            return
        task = asyncio.get_running_loop().create_task(self._shadow(parsed, request_id, correlation_id))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(self, parsed: ParsedInput, request_id: str, correlation_id: str | None) -> None:
        started = time.perf_counter()
        guard = self.guard()
        try:
            result = await self.batchers["shadow"].predict(parsed)
        except NoModelError:
            return
        except Exception as exc:
            log.warning("Shadow scoring of request %s failed: %s", request_id, exc)
            if guard is not None:
                guard.canary.observe(time.perf_counter() - started, error=True)
            return
        if guard is not None:
            guard.canary.observe(time.perf_counter() - started, result.predictions)
        self.metrics.observe_predictions("shadow", result.model.version, parsed.rows)
        try:
            self.log_rows(
                parsed, result.predictions, request_id, result.model, "shadow", correlation_id=correlation_id
            )
        except Exception as exc:  # a shadow row is evidence, not an answer: drop it rather than fail anything
            self.metrics.error("shadow_dropped")
            log.debug("Shadow rows of request %s not logged: %s", request_id, exc)
