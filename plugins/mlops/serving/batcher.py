"""Adaptive micro-batching: concurrent requests share one ``model.predict`` call.

One worker (an asyncio task) takes what is queued, up to ``max_rows`` rows, and predicts it on one worker
thread, so the event loop keeps accepting requests meanwhile; what arrives during a ``predict`` forms the next
batch. The worker waits (at most ``wait_ms`` after the first arrival) only when other requests have announced
themselves and are still being parsed: a lone request is never delayed.

Each batch takes the model reference once: every row of it is scored by one version, and each request learns
which. A hot swap therefore never mixes versions inside a request. When a batched call raises, the requests of
the batch are scored one by one, so that one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.errors import MlopsError
from mlops.serving.inputs import InputError, ParsedInput

if TYPE_CHECKING:
    from mlops.serving.holder import LoadedModel
    from mlops.serving.metrics import ServerMetrics

log = logging.getLogger(__name__)

#: A small, quick batch is predicted on the event loop's own thread: handing it to a worker thread costs about
#: a millisecond of GIL hand-over, more than it saves, since scikit-learn holds the GIL for most of a small
#: ``predict``. Larger or slower ones (by the model's recent average) go to the worker thread, so that the loop
#: keeps answering meanwhile.
INLINE_MAX_ROWS = 64
INLINE_MAX_SECONDS = 0.005


class NoModelError(MlopsError):
    """No model is loaded to answer (the server is not ready)."""

    code = "NO_MODEL"


class PredictionError(MlopsError):
    """The model raised on a request's rows.

    Attributes:
        model: The version that raised.
        client_error: The model rejected these values (ValueError, TypeError, arithmetic): a 422, not a 5xx.
    """

    code = "PREDICTION_FAILED"

    def __init__(self, message: str, model: LoadedModel, *, client_error: bool) -> None:
        self.model = model
        self.client_error = client_error
        super().__init__(message)


@dataclass
class Prediction:
    predictions: list[Any]
    model: LoadedModel
    seconds: float = 0.0


@dataclass(eq=False)
class _Item:
    parsed: ParsedInput
    future: asyncio.Future
    submitted: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Batches concurrent ``predict`` calls for the model returned by ``get_model``.

    Args:
        get_model: Returns the model to use now (read once per batch), or None.
        max_rows: Largest batch (``serving.max_batch_rows``); a request is never split.
        wait_ms: Longest wait for announced requests after the first arrival (``serving.batch_wait_ms``).
        alias: Label of the batch-size series.
        metrics: Where batch sizes are observed.
    """

    def __init__(
        self,
        get_model: Callable[[], LoadedModel | None],
        *,
        max_rows: int,
        wait_ms: float,
        alias: str = "champion",
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._get_model = get_model
        self.max_rows = max_rows
        self.wait_seconds = wait_ms / 1000.0
        self.alias = alias
        self._metrics = metrics
        self._queue: deque[_Item] = deque()
        self._announced = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mlops-predict-{alias}")
        self._closed = False
        self._cost: tuple[LoadedModel | None, float] = (
            None,
            0.0,
        )  # the model and its recent seconds per call

    # The request side --------------------------------------------------------------------------------------
    def announce(self) -> None:
        """A request will submit soon (it is reading and checking its body): worth a short wait for it."""
        self._announced += 1

    def withdraw(self) -> None:
        """An announced request will not submit after all (its body was refused)."""
        self._announced = max(0, self._announced - 1)
        if self._wake is not None:
            self._wake.set()

    async def predict(self, parsed: ParsedInput, *, announced: bool = False) -> Prediction:
        """Score ``parsed`` in the next batch; raises NoModelError, PredictionError or InputError."""
        if announced:
            self._announced = max(0, self._announced - 1)
        if self._closed:
            raise NoModelError("the server is shutting down")
        self._ensure_worker()
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(parsed, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    # The worker --------------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        # First use, or a new event loop (test clients run one per test): start a worker on this one.
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name=f"mlops-batcher-{self.alias}")

    def _take(self, budget: int, batch: list[_Item]) -> int:
        taken = 0
        while self._queue:
            rows = self._queue[0].parsed.rows
            if batch and taken + rows > budget:
                break
            batch.append(self._queue.popleft())
            taken += rows
        return taken

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            if not self._queue:
                wake.clear()
                await wake.wait()
                continue
            batch: list[_Item] = []
            rows = self._take(self.max_rows, batch)
            try:
                if self.wait_seconds > 0 and self._announced > 0 and rows < self.max_rows:
                    rows += await self._gather_more(batch, rows)
                await self._predict_batch(batch, rows)
            except asyncio.CancelledError:
                for item in batch:
                    _resolve(item.future, exception=NoModelError("the server is shutting down"))
                raise
            except Exception as exc:  # a bug here must not leave requests waiting forever
                log.exception("Micro-batch of %d requests failed", len(batch))
                for item in batch:
                    _resolve(item.future, exception=exc)

    async def _gather_more(self, batch: list[_Item], rows: int) -> int:
        """Wait up to ``wait_ms`` for the announced requests to join ``batch``; returns the rows they added."""
        assert self._wake is not None and self._loop is not None
        wake, loop = self._wake, self._loop
        deadline = loop.time() + self.wait_seconds
        added = 0
        while self._announced > 0 and rows + added < self.max_rows:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), remaining)
            except TimeoutError:
                break
            added += self._take(self.max_rows - rows - added, batch)
        return added

    async def _predict_batch(self, batch: list[_Item], rows: int) -> None:
        model = self._get_model()  # once per batch: every row of it is scored by this one version
        if model is None:
            for item in batch:
                _resolve(item.future, exception=NoModelError("no model is loaded yet"))
            return
        parsed = [i.parsed for i in batch]
        known, cost = self._cost
        started = time.perf_counter()
        if rows <= INLINE_MAX_ROWS and (known is not model or cost <= INLINE_MAX_SECONDS):
            results = _score(model, parsed)
        else:
            assert self._loop is not None
            results = await self._loop.run_in_executor(self._executor, _score, model, parsed)
        elapsed = time.perf_counter() - started
        self._cost = (model, elapsed if known is not model else 0.8 * cost + 0.2 * elapsed)
        if self._metrics is not None:
            self._metrics.observe_batch(self.alias, rows)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                _resolve(item.future, exception=result)
            else:
                predictions, seconds = result
                _resolve(item.future, Prediction(predictions, model, seconds))

    async def close(self) -> None:
        """Stop the worker after the batch in progress; later calls raise NoModelError."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        while self._queue:
            _resolve(self._queue.popleft().future, exception=NoModelError("the server is shutting down"))
        self._executor.shutdown(wait=True)


def _resolve(future: asyncio.Future, result: Any = None, *, exception: BaseException | None = None) -> None:
    if future.done():  # the client went away and its handler was cancelled
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)


def _score(model: LoadedModel, batches: list[ParsedInput]) -> list[tuple[list[Any], float] | BaseException]:
    """Predict several checked batches in one call (on the worker thread) and split the result back."""
    import sklearn

    # Inputs were checked finite and typed already; skipping scikit-learn's re-checks saves ~1 ms a call.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        batches = [_conform(model, b) for b in batches]
        ready = [b for b in batches if not isinstance(b, BaseException)]
        if len(ready) > 1:
            started = time.perf_counter()
            try:
                frame = model.schema.concat(ready)
                predicted = _as_list(model.model.predict(frame), len(frame))
            except Exception:
                log.info("A batch of %d requests failed; scoring them one by one", len(ready))
            else:
                seconds = time.perf_counter() - started
                out: list[tuple[list[Any], float] | BaseException] = []
                offset = 0
                for b in batches:
                    if isinstance(b, BaseException):
                        out.append(b)
                    else:
                        out.append((predicted[offset : offset + b.rows], seconds))
                        offset += b.rows
                return out
        return [b if isinstance(b, BaseException) else _score_one(model, b) for b in batches]


def _score_one(model: LoadedModel, parsed: ParsedInput) -> tuple[list[Any], float] | BaseException:
    started = time.perf_counter()
    try:
        return _as_list(model.model.predict(parsed.frame), parsed.rows), time.perf_counter() - started
    except Exception as exc:
        client = isinstance(exc, (ValueError, TypeError, ArithmeticError))
        return PredictionError(
            f"model '{model.name}' v{model.version} could not score this input: {type(exc).__name__}: {exc}",
            model,
            client_error=client,
        )


def _conform(model: LoadedModel, parsed: ParsedInput) -> ParsedInput | BaseException:
    """The batch checked against ``model``'s own schema (a swap may bring other columns than it was parsed for)."""
    if parsed.schema is model.schema or parsed.schema.key == model.schema.key:
        return parsed
    try:
        return model.schema.parse_payload({"inputs": _columns_of(parsed)})
    except InputError as exc:
        return exc


def _columns_of(parsed: ParsedInput) -> dict[str, list[Any]]:
    records = parsed.records()
    names = dict.fromkeys(name for record in records for name in record)
    return {name: [record.get(name) for record in records] for name in names}


def _as_list(predicted: Any, rows: int) -> list[Any]:
    array = np.asarray(predicted)
    if array.ndim == 0 or len(array) != rows:
        raise RuntimeError(f"the model returned {array.size} predictions for {rows} rows")
    return array.tolist()
