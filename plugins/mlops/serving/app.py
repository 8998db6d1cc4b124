"""The model server of one pipeline: an ASGI app (FastAPI) serving ``models:/<pipeline>@champion``.

Endpoints:

=====================  ==================================================================================
``POST /predict``      score records; ``{"predictions", "model_version", "model", "request_id"}``
``GET /health``        the process is alive
``GET /ready``         200 once a champion is loaded and smoke-tested, else 503 with the reason
``GET /model``         the serving version, its lineage, the canary, the last load error
``GET /metrics``       Prometheus text
``POST /feedback``     ``{"request_id", "label"}``: the true label of a served request (202)
``POST /admin/reload`` re-read the aliases now (204); ``?wait=true`` waits for the new version to serve
``GET /canary``        guard statistics of the canary (or shadow) phase; 404 when there is none
=====================  ==================================================================================

Every prediction served is in the inference log first: when the log cannot take it (``InferenceLogFull``), the
request gets 503 with ``Retry-After`` and no prediction. A bad body never gets a 5xx (see
:mod:`mlops.serving.inputs`).

Example:
    >>> from mlops.config import load_config
    >>> from mlops.serving.app import run
    >>> run(load_config("include/pipelines/breast_cancer.yaml"), "127.0.0.1", 8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from mlops.serving.batcher import MicroBatcher, NoModelError, PredictionError
from mlops.serving.holder import CANARY, CHAMPION, LoadedModel, ModelHolder
from mlops.serving.inference_log import InferenceLogClosed, InferenceLogFull
from mlops.serving.inputs import InputError, InputSchema, ParsedInput, body_too_large
from mlops.serving.metrics import CanaryGuard, MetricsMiddleware, ServerMetrics, state_metrics

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = r"^[!-~]{1,128}$"
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_NOT_READY = 5
RETRY_AFTER_LOG_FULL = 1
#: Shadow scorings waiting at most; beyond, copies are dropped (counted) rather than pile up in memory.
MAX_PENDING_SHADOWS = 1000
ADMIN_TOKEN_ENV = "MLOPS_SERVING_ADMIN_TOKEN"


# Documented bodies ------------------------------------------------------------------------------------------
class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="One prediction per row, in the order sent.")
    model_version: int = Field(description="The registered model version that computed every prediction.")
    model: str = Field(description="The registered model (the pipeline's name).")
    request_id: str = Field(description="The X-Request-ID sent, or one generated; use it for feedback.")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What is wrong and where (field, row).")
    code: str = Field(description="INVALID_INPUT, INVALID_REQUEST, NOT_READY, INFERENCE_LOG_FULL, ...")
    field: str | None = Field(default=None, description="The feature, key or parameter concerned.")
    row: int | None = Field(default=None, description="The row concerned (0-based).")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        min_length=1, max_length=128, description="The request id of a served prediction."
    )
    label: StrictBool | StrictInt | FiniteFloat | StrictStr = Field(description="The true label (target).")
    time: datetime | None = Field(default=None, description="When the label became known (default: now).")


class FeedbackAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    request_id: str


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ready", "not ready"]
    model: str
    model_version: int | None = None
    reason: str | None = None


class RouteStatsResponse(BaseModel):
    requests: int
    errors: int
    error_rate: float
    rows: int
    p50_ms: float | None
    p99_ms: float | None
    class_counts: dict[str, int] | None = Field(description="Predicted classes (classification).")
    mean: float | None = Field(description="Mean prediction (regression).")
    std: float | None = Field(description="Standard deviation of the predictions (regression).")


class CanaryResponse(BaseModel):
    canary_version: int
    champion_version: int
    strategy: Literal["canary", "shadow"]
    traffic_share: float | None
    since: str
    champion: RouteStatsResponse
    canary: RouteStatsResponse


class ModelResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: int | None = Field(description="The champion serving, or null before the first load.")
    alias: str = CHAMPION
    loaded_at: str | None = None
    load_seconds: float | None = None
    run_id: str | None = None
    lineage: dict[str, str] = Field(
        default_factory=dict, description="Tags of the version (data, code, gate)."
    )
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    strategy: str
    canary: dict[str, Any] | None = Field(description="The canary version serving, if any.")
    loading: list[dict[str, Any]] = Field(default_factory=list, description="Versions being loaded.")
    last_load_error: dict[str, Any] | None = None
    load_errors: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Current error per alias."
    )


_ERRORS = {
    400: {"model": ErrorResponse, "description": "Malformed JSON."},
    413: {
        "model": ErrorResponse,
        "description": "Body larger than serving.max_body_bytes, or more rows than serving.max_batch_rows.",
    },
    422: {
        "model": ErrorResponse,
        "description": "Wrong shape, missing or unknown field, wrong type, null in a "
        "feature that is not nullable, empty batch. The message names the field and the row.",
    },
    503: {
        "model": ErrorResponse,
        "description": "No champion loaded yet, or the inference log is full: retry "
        "after the Retry-After header's seconds.",
    },
}


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
        self.admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None

    def ensure_started(self) -> None:
        """Start the inference log's writer and the alias polling (once; also on the first request, for ASGI
        clients that do not run the lifespan)."""
        if self._started:
            return
        self._started = True
        if self.inference_log is not None and hasattr(self.inference_log, "start"):
            self.inference_log.start()
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

    def log_rows(
        self, parsed: ParsedInput, predictions: list[Any], request_id: str, model: LoadedModel, route: str
    ) -> None:
        if self.inference_log is None:
            return
        now = datetime.now(UTC)
        self.inference_log.log_predictions(
            [
                {
                    "time": now,
                    "request_id": request_id,
                    "model_version": model.version,
                    "inputs": record,
                    "prediction": prediction,
                    "route": route,
                }
                for record, prediction in zip(parsed.records(), predictions, strict=True)
            ]
        )

    def shadow(self, parsed: ParsedInput, request_id: str) -> None:
        """Score a copy with the canary in the background; its result is logged (route shadow), never returned."""
        if len(self._shadows) >= MAX_PENDING_SHADOWS:
            self.metrics.error("shadow_dropped")
            return
        task = asyncio.get_running_loop().create_task(self._shadow(parsed, request_id))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(self, parsed: ParsedInput, request_id: str) -> None:
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
            self.log_rows(parsed, result.predictions, request_id, result.model, "shadow")
        except Exception as exc:  # a shadow row is evidence, not an answer: drop it rather than fail anything
            self.metrics.error("shadow_dropped")
            log.debug("Shadow rows of request %s not logged: %s", request_id, exc)


# The app ---------------------------------------------------------------------------------------------------------
def create_app(
    config: PipelineConfig,
    *,
    inference_log: Any = None,
    holder: ModelHolder | None = None,
    start_polling: bool = True,
) -> FastAPI:
    """The model server of ``config``'s pipeline.

    Args:
        config: The pipeline (its ``serving``, ``deploy`` and ``alerts`` sections are used).
        inference_log: Where served predictions and feedback go: an object with ``log_predictions(rows)``,
            ``log_feedback(request_id, label, time=None)``, ``start()``, ``close(timeout)`` and ``stats()``
            (:class:`mlops.serving.inference_log.InferenceLog`); None logs nothing.
        holder: The models (default: a new :class:`ModelHolder` alerting the pipeline's routes on a failed load).
        start_polling: Follow the aliases (first check at startup, then every ``serving.poll_interval_seconds``).

    Returns:
        The FastAPI app; its ``state.server`` is the :class:`ModelServer` (``await state.server.close()`` when
        the app runs without a lifespan).
    """
    holder = holder or ModelHolder(config, on_failure=_alert_on_failure(config))
    server = ModelServer(config, inference_log=inference_log, holder=holder, start_polling=start_polling)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        server.ensure_started()
        try:
            yield
        finally:
            await server.close()

    app = FastAPI(
        title=f"{config.name} model server",
        version="1",
        description=_description(config),
        lifespan=lifespan,
    )
    app.state.server = server

    @app.exception_handler(InputError)
    async def _input_error(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        try:
            code = HTTPStatus(exc.status_code).name
        except ValueError:
            code = "HTTP_ERROR"
        return JSONResponse(
            {"detail": str(exc.detail), "code": code, "field": None, "row": None},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(
            {
                "detail": f"{where or 'request'}: {first.get('msg', 'invalid')}",
                "code": "INVALID_REQUEST",
                "field": where or None,
                "row": None,
            },
            status_code=422,
        )

    @app.post(
        "/predict",
        summary="Score records with the champion (or, for a share of requests, the canary)",
        response_class=JSONResponse,
        responses={
            200: {"model": PredictResponse, "description": "The predictions and the version used."},
            **_ERRORS,
        },
        openapi_extra={"requestBody": _predict_body_doc(server.schema, config)},
    )
    async def predict(
        request: Request,
        x_request_id: Annotated[
            str | None,
            Header(
                alias=REQUEST_ID_HEADER,
                pattern=REQUEST_ID_PATTERN,
                description="Your id for this request (1-128 visible ASCII characters); else one is made.",
            ),
        ] = None,
    ) -> Response:
        server.ensure_started()
        started = time.perf_counter()
        request_id = x_request_id or uuid.uuid4().hex
        route = server.route_for(request_id)
        batcher = server.batchers[route]
        target = holder.canary if route == CANARY else holder.champion
        batcher.announce()
        try:
            body = await _read_body(request, config.serving.max_body_bytes)
            parsed = (target.schema if target is not None else server.schema).parse(body)
        except InputError as exc:
            batcher.withdraw()
            server.metrics.error("input")
            return _json(exc.to_dict(), exc.status, request_id)
        except BaseException:
            batcher.withdraw()
            raise
        if holder.champion is None:
            batcher.withdraw()
            server.metrics.error("unavailable")
            return _unavailable(
                f"not ready: {server.not_ready_reason()}", "NOT_READY", RETRY_AFTER_NOT_READY, request_id
            )
        guard = server.guard()
        try:
            result = await batcher.predict(parsed, announced=True)
        except InputError as exc:  # the version swapped in meanwhile takes other columns
            server.metrics.error("input")
            return _json(exc.to_dict(), exc.status, request_id)
        except NoModelError as exc:
            server.metrics.error("unavailable")
            return _unavailable(f"not ready: {exc}", "NOT_READY", RETRY_AFTER_NOT_READY, request_id)
        except PredictionError as exc:
            server.metrics.error("model")
            if guard is not None:
                guard.route(exc.model.alias).observe(time.perf_counter() - started, error=True)
            status = 422 if exc.client_error else 500
            return _json(
                {"detail": str(exc), "code": exc.code, "field": None, "row": None}, status, request_id
            )
        model = result.model
        served = model.alias
        try:
            server.log_rows(parsed, result.predictions, request_id, model, served)
        except (InferenceLogFull, InferenceLogClosed) as exc:
            server.metrics.error("log_full")
            return _unavailable(
                f"the prediction could not be logged, so it is not served: {exc}",
                "INFERENCE_LOG_FULL",
                RETRY_AFTER_LOG_FULL,
                request_id,
            )
        except Exception as exc:
            server.metrics.error("internal")
            log.exception("Could not log request %s", request_id)
            return _json(
                {
                    "detail": f"the prediction could not be logged, so it is not served: {exc}",
                    "code": "INFERENCE_LOG_ERROR",
                    "field": None,
                    "row": None,
                },
                500,
                request_id,
            )
        server.metrics.observe_predictions(served, model.version, parsed.rows)
        if server.strategy == "shadow" and holder.canary is not None:
            server.shadow(parsed, request_id)
        if guard is not None:
            guard.route(served).observe(time.perf_counter() - started, result.predictions)
        payload = {
            "predictions": result.predictions,
            "model_version": model.version,
            "model": model.name,
            "request_id": request_id,
        }
        return _json(payload, 200, request_id)

    @app.get("/health", response_model=HealthResponse, summary="The process is alive")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        response_model=ReadyResponse,
        summary="200 when a champion is loaded and smoke-tested; 503 with the reason otherwise",
        responses={503: {"model": ReadyResponse, "description": "Not ready, and why."}},
    )
    async def ready() -> Any:
        server.ensure_started()
        champion = holder.champion
        if champion is not None:
            return {"status": "ready", "model": config.name, "model_version": champion.version}
        return JSONResponse(
            {
                "status": "not ready",
                "model": config.name,
                "model_version": None,
                "reason": server.not_ready_reason(),
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_NOT_READY)},
        )

    @app.get(
        "/model", response_model=ModelResponse, summary="The serving version, its lineage, canary, errors"
    )
    async def model_info() -> dict[str, Any]:
        server.ensure_started()
        champion, canary = holder.champion, holder.canary
        info: dict[str, Any] = {"name": config.name, "version": None, "alias": CHAMPION}
        if champion is not None:
            info.update(champion.describe())
        info.update(
            strategy=server.strategy,
            canary=canary.describe() if canary is not None else None,
            loading=[{"alias": a, "version": v} for a, v in holder.loading()],
            last_load_error=holder.last_error.to_dict() if holder.last_error else None,
            load_errors={alias: e.to_dict() for alias, e in holder.errors.items()},
        )
        return info

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "Prometheus text exposition format.",
            }
        },
    )
    async def metrics() -> Response:
        body, content_type = server.metrics.render()
        return Response(body, media_type=content_type)

    @app.post(
        "/feedback",
        status_code=202,
        response_model=FeedbackAccepted,
        summary="The true label of a served request (joined to its prediction by request_id)",
        responses={
            400: {"model": ErrorResponse, "description": "Malformed JSON."},
            422: {"model": ErrorResponse, "description": "Invalid body."},
            501: {"model": ErrorResponse, "description": "This server keeps no inference log."},
            503: {"model": ErrorResponse, "description": "The inference log is full; retry later."},
        },
    )
    async def feedback(body: FeedbackRequest) -> Any:
        if server.inference_log is None:
            return JSONResponse(
                {
                    "detail": "this server keeps no inference log, so feedback has nowhere to go",
                    "code": "NO_INFERENCE_LOG",
                    "field": None,
                    "row": None,
                },
                status_code=501,
            )
        try:
            server.inference_log.log_feedback(body.request_id, body.label, time=body.time)
        except (InferenceLogFull, InferenceLogClosed) as exc:
            server.metrics.error("log_full")
            return JSONResponse(
                {
                    "detail": f"feedback not recorded: {exc}",
                    "code": "INFERENCE_LOG_FULL",
                    "field": None,
                    "row": None,
                },
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_LOG_FULL)},
            )
        return {"status": "accepted", "request_id": body.request_id}

    @app.post(
        "/admin/reload",
        status_code=204,
        response_class=Response,
        summary="Re-read the aliases now (also retries a version that failed to load)",
        responses={
            401: {
                "model": ErrorResponse,
                "description": f"{ADMIN_TOKEN_ENV} is set and the bearer token is missing or wrong.",
            },
            422: {"model": ErrorResponse, "description": "Invalid query parameters."},
        },
    )
    async def reload(
        wait: Annotated[
            bool, Query(description="Wait until the versions the aliases point at serve.")
        ] = False,
        timeout: Annotated[float, Query(gt=0, le=600, description="Longest wait, in seconds.")] = 60.0,
        authorization: Annotated[
            str | None, Header(description="Bearer token, when the server has one.")
        ] = None,
    ) -> Response:
        if server.admin_token is not None and authorization != f"Bearer {server.admin_token}":
            return JSONResponse(
                {
                    "detail": "admin token missing or wrong",
                    "code": "UNAUTHORIZED",
                    "field": "Authorization",
                    "row": None,
                },
                status_code=401,
            )
        server.ensure_started()
        await run_in_threadpool(holder.refresh, force=True)
        if wait:
            await run_in_threadpool(holder.wait, timeout)
        return Response(status_code=204)

    @app.get(
        "/canary",
        response_model=CanaryResponse,
        summary="Live guard statistics of the canary (or shadow) phase",
        responses={404: {"model": ErrorResponse, "description": "No canary serves now."}},
    )
    async def canary() -> Any:
        guard = server.guard()
        if guard is None:
            why = (
                f"deploy strategy is '{server.strategy}'"
                if server.strategy not in ("canary", "shadow")
                else f"no version behind alias '{CANARY}' is loaded"
            )
            return JSONResponse(
                {"detail": f"no canary phase: {why}", "code": "NO_CANARY", "field": None, "row": None},
                status_code=404,
            )
        return guard.snapshot()

    paths = {route.path for route in app.routes if hasattr(route, "path")}
    app.add_middleware(MetricsMiddleware, metrics=server.metrics, paths=lambda: paths)
    components = _predict_components(server.schema, config)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def run(
    config: PipelineConfig,
    host: str | None = None,
    port: int | None = None,
    *,
    log_inferences: bool = True,
    log_level: str = "info",
) -> None:
    """Serve ``config``'s pipeline with uvicorn until SIGTERM or SIGINT.

    On a signal, uvicorn stops accepting connections and lets the requests in flight finish (up to 30 s); then
    polling stops and the inference log writes what it holds (``close()``).

    Args:
        config: The pipeline.
        host: Interface to bind (default ``serving.host``).
        port: Port (default ``serving.port``).
        log_inferences: Keep the inference log at ``serving.inference_log.uri`` (default: on).
        log_level: uvicorn's log level.
    """
    import uvicorn

    inference_log = None
    if log_inferences:
        from mlops.serving.inference_log import InferenceLog

        inference_log = InferenceLog.from_config(config)
    app = create_app(config, inference_log=inference_log)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host or config.serving.host,
            port=port or config.serving.port,
            lifespan="on",
            timeout_graceful_shutdown=30,
            access_log=False,
            log_level=log_level,
        )
    )
    server.run()


# Helpers ---------------------------------------------------------------------------------------------------------
async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InputError(400, f"Content-Length is not a number: {declared[:40]!r}") from None
        if size > limit:
            raise body_too_large(size, limit)
    chunks = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise body_too_large(None, limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise InputError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def _json(
    payload: dict[str, Any], status: int, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    try:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a NaN or infinite prediction: JSON has no such number, so send null
        payload = {**payload, "predictions": [_finite_or_none(p) for p in payload.get("predictions", [])]}
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={REQUEST_ID_HEADER: request_id, **(headers or {})},
    )


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _unavailable(message: str, code: str, retry_after: int, request_id: str) -> Response:
    return _json(
        {"detail": message, "code": code, "field": None, "row": None},
        503,
        request_id,
        {"Retry-After": str(retry_after)},
    )


def _alert_on_failure(config: PipelineConfig) -> Any:
    def alert(message: str) -> None:
        from mlops import alerts

        alerts.send_event(
            config.name,
            config.alerts,
            "failure",
            "model server could not load a new model version",
            message,
            None,
        )

    return alert


def _description(config: PipelineConfig) -> str:
    return (
        f"Serves `models:/{config.name}@champion`"
        + (
            f" with a `{config.deploy.strategy}` phase for alias `canary`"
            if config.deploy.strategy != "direct"
            else ""
        )
        + f". {config.description}\n\n"
        '`POST /predict` takes records (`{"records": [...]}`, `{"record": {...}}` or a bare list) or an MLflow '
        "scoring body (`dataframe_split`, `dataframe_records`, `inputs`, `instances`) and answers "
        '`{"predictions": [...], "model_version": N, "model": name, "request_id": id}`. Errors are '
        '`{"detail", "code", "field", "row"}`: 400 malformed JSON, 413 too large, 422 anything else about '
        "the body, 503 not ready or inference log full (with `Retry-After`)."
    )


def _example_record(config: PipelineConfig, schema: InputSchema) -> dict[str, Any]:
    rules = config.expectations.columns
    record: dict[str, Any] = {}
    for feature in schema.features:
        rule = rules.get(feature.name)
        if feature.kind == "numeric":
            low = rule.min if rule is not None and rule.min is not None else 0.0
            high = rule.max if rule is not None and rule.max is not None else low + 2.0
            record[feature.name] = round((low + high) / 2, 4) if rule is not None else 1.0
        else:
            allowed = rule.allowed if rule is not None and rule.allowed else ["value"]
            record[feature.name] = str(allowed[0])
    return record


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _predict_components(schema: InputSchema, config: PipelineConfig) -> dict[str, Any]:
    rows = {"minItems": 1, "maxItems": schema.max_rows}
    records = {"type": "array", "items": _ref("PredictRecord"), **rows}
    columns = {
        "type": "object",
        "description": "Columns: {feature: [values]} (or {feature: value} for one row).",
        "properties": {name: {} for name in schema.names},
        "required": list(schema.names),
        "additionalProperties": False,
    }
    no_params = {
        "type": "object",
        "maxProperties": 0,
        "description": "Accepted for MLflow clients; must be empty.",
    }

    def body(key: str, value: dict[str, Any], description: str, *, mlflow: bool = False) -> dict[str, Any]:
        properties = {key: value, **({"params": no_params} if mlflow else {})}
        return {
            "type": "object",
            "description": description,
            "properties": properties,
            "required": [key],
            "additionalProperties": False,
        }

    record = schema.record_json_schema()
    record["description"] = "One row: every feature of the model, nothing else."
    record["example"] = _example_record(config, schema)
    return {
        "PredictRecord": record,
        "PredictRecords": body("records", records, "A batch of records."),
        "PredictOneRecord": body("record", _ref("PredictRecord"), "One record."),
        "PredictRecordList": {**records, "description": "A bare list of records."},
        "PredictDataframeRecords": body("dataframe_records", records, "MLflow: records.", mlflow=True),
        "PredictDataframeSplit": body(
            "dataframe_split",
            {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array"}, **rows},
                    "index": {"type": "array"},
                },
                "required": ["columns", "data"],
                "additionalProperties": False,
            },
            "MLflow: pandas 'split' orientation (index ignored).",
            mlflow=True,
        ),
        "PredictInputs": body(
            "inputs", {"anyOf": [records, columns]}, "MLflow: records or columns.", mlflow=True
        ),
        "PredictInstances": body(
            "instances", {"anyOf": [records, columns]}, "MLflow: records or columns.", mlflow=True
        ),
    }


def _predict_body_doc(schema: InputSchema, config: PipelineConfig) -> dict[str, Any]:
    names = [
        "PredictRecords",
        "PredictOneRecord",
        "PredictRecordList",
        "PredictDataframeRecords",
        "PredictDataframeSplit",
        "PredictInputs",
        "PredictInstances",
    ]
    return {
        "required": True,
        "description": f"Rows to score: every feature of the model ({len(schema.names)}), at most "
        f"{schema.max_rows} rows and {schema.max_body_bytes} bytes.",
        "content": {
            "application/json": {
                "schema": {"anyOf": [_ref(n) for n in names]},
                "example": {"records": [_example_record(config, schema)]},
            }
        },
    }
