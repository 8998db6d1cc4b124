"""The model server of one pipeline: an ASGI app (FastAPI) serving ``models:/<pipeline>@champion``.

Endpoints:

=====================  ==================================================================================
``POST /predict``      score records; ``{"predictions", "model_version", "model", "request_id"}``
``GET /health``        the process is alive
``GET /ready``         200 once a champion is loaded and smoke-tested, else 503 with the reason
``GET /model``         the serving version, its lineage, the canary, the last load error
``GET /metrics``       Prometheus text
``POST /feedback``     ``{"request_id", "label"}``: the true label of a served row (202; feedback token)
``POST /admin/reload`` re-read the aliases now (204; admin token); ``?wait=true`` waits for the new version
``GET /canary``        guard statistics of the canary (or shadow) phase; 404 when there is none
=====================  ==================================================================================

Every prediction served is in the inference log first, and durable in its journal on the local disk
(:mod:`mlops.serving.journal`): when the log cannot take it (``InferenceLogFull``, ``JournalError``), the
request gets 503 with ``Retry-After`` and no prediction. A bad body never gets a 5xx (see
:mod:`mlops.serving.inputs`). Request ids, times and the labels' checks are the server's
(:mod:`mlops.serving.feedback`); POSTs are JSON only and ``/feedback`` and ``/admin/*`` want a token
(:mod:`mlops.serving.security`); inputs out of the config's bounds are flagged or refused
(:mod:`mlops.serving.ranges`).

Example:
    >>> from mlops.config import load_config
    >>> from mlops.serving.app import run
    >>> run(load_config("include/pipelines/breast_cancer.yaml"), "127.0.0.1", 8000)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mlops.config import settings
from mlops.serving.api import (
    ERRORS,
    FEEDBACK_MAX_BYTES,
    REQUEST_ID_HEADER,
    REQUEST_ID_PATTERN,
    RETRY_AFTER_LOG_FULL,
    RETRY_AFTER_NOT_READY,
    CanaryResponse,
    ErrorResponse,
    FeedbackAccepted,
    FeedbackRequest,
    HealthResponse,
    ModelResponse,
    PredictResponse,
    ReadyResponse,
    describe,
    error_body,
    error_response,
    json_response,
    predict_body_doc,
    predict_components,
    read_body,
    unavailable,
)
from mlops.serving.batcher import NoModelError, PredictionError
from mlops.serving.feedback import FeedbackError, new_request_id
from mlops.serving.holder import CANARY, CHAMPION, ModelHolder
from mlops.serving.inference_log import InferenceLogClosed, InferenceLogFull
from mlops.serving.inputs import InputError
from mlops.serving.journal import JournalError
from mlops.serving.metrics import MetricsMiddleware
from mlops.serving.security import JsonOnlyMiddleware, bearer_ok
from mlops.serving.server import ModelServer

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)


# Error answers --------------------------------------------------------------------------------------------------
async def _input_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return JSONResponse(exc.to_dict(), status_code=exc.status)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    try:
        code = HTTPStatus(exc.status_code).name
    except ValueError:
        code = "HTTP_ERROR"
    return error_response(str(exc.detail), code, exc.status_code, headers=exc.headers)


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _invalid(exc.errors())


def _invalid(errors: Any) -> JSONResponse:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    detail = f"{where or 'request'}: {first.get('msg', 'invalid')}"
    return error_response(detail, "INVALID_REQUEST", 422, field=where or None)


# The routes -----------------------------------------------------------------------------------------------------
router = APIRouter()


def _server(request: Request) -> ModelServer:
    return request.app.state.server


Server = Annotated[ModelServer, Depends(_server)]


@router.post(
    "/predict",
    summary="Score records with the champion (or, for a share of requests, the canary)",
    response_class=JSONResponse,
    responses={
        200: {"model": PredictResponse, "description": "The predictions and the version used."},
        **ERRORS,
    },
)
async def predict(
    request: Request,
    server: Server,
    x_request_id: Annotated[
        str | None,
        Header(
            alias=REQUEST_ID_HEADER,
            pattern=REQUEST_ID_PATTERN,
            description="Your id for this request (1-128 visible ASCII characters): logged as its "
            "correlation id and sticky for canary routing. Feedback uses the server's request_id.",
        ),
    ] = None,
) -> Response:
    server.ensure_started()
    started = time.perf_counter()
    request_id = new_request_id()
    route = server.route_for(x_request_id or request_id)
    batcher = server.batchers[route]
    holder = server.holder
    target = holder.canary if route == CANARY else holder.champion
    batcher.announce()
    try:
        body = await read_body(request, server.config.serving.max_body_bytes)
        parsed = (target.schema if target is not None else server.schema).parse(body)
        flagged = server.out_of_range(parsed, target)  # raises in serving.out_of_range: reject
    except InputError as exc:
        batcher.withdraw()
        server.metrics.error("input")
        return json_response(exc.to_dict(), exc.status, request_id)
    except BaseException:
        batcher.withdraw()
        raise
    if holder.champion is None:
        batcher.withdraw()
        server.metrics.error("unavailable")
        return unavailable(
            f"not ready: {server.not_ready_reason()}", "NOT_READY", RETRY_AFTER_NOT_READY, request_id
        )
    guard = server.guard()
    try:
        result = await batcher.predict(parsed, announced=True)
    except InputError as exc:  # the version swapped in meanwhile takes other columns
        server.metrics.error("input")
        return json_response(exc.to_dict(), exc.status, request_id)
    except NoModelError as exc:
        server.metrics.error("unavailable")
        return unavailable(f"not ready: {exc}", "NOT_READY", RETRY_AFTER_NOT_READY, request_id)
    except PredictionError as exc:
        server.metrics.error("model")
        if guard is not None:
            guard.route(exc.model.alias).observe(time.perf_counter() - started, error=True)
        status = 422 if exc.client_error else 500
        return json_response(error_body(str(exc), exc.code), status, request_id)
    model = result.model
    served = model.alias
    broken = next((i for i, p in enumerate(result.predictions) if not _finite(p)), None)
    if broken is not None:  # an internal overflow or NaN: no answer rather than garbage
        server.metrics.error("model")
        detail = f"row {broken}: the model's prediction is not a finite number (an input out of its range?)"
        return json_response(error_body(detail, "NON_FINITE_PREDICTION"), 422, request_id)
    try:
        ticket = server.log_rows(
            parsed,
            result.predictions,
            request_id,
            model,
            served,
            correlation_id=x_request_id,
            flagged=flagged,
        )
        await server.durable(ticket)
    except (InferenceLogFull, InferenceLogClosed, JournalError) as exc:
        server.metrics.error("log_full")
        return unavailable(
            f"the prediction could not be logged, so it is not served: {exc}",
            "INFERENCE_LOG_FULL",
            RETRY_AFTER_LOG_FULL,
            request_id,
        )
    except Exception as exc:
        server.metrics.error("internal")
        log.exception("Could not log request %s", request_id)
        return json_response(
            error_body(
                f"the prediction could not be logged, so it is not served: {exc}", "INFERENCE_LOG_ERROR"
            ),
            500,
            request_id,
        )
    server.metrics.observe_predictions(served, model.version, parsed.rows)
    server.answered.add(request_id, parsed.rows, model.version)
    server.labels.remember(model.version, model.model)
    if flagged:
        server.metrics.observe_out_of_range("flag", len(flagged))
    if server.strategy == "shadow" and holder.canary is not None:
        server.shadow(parsed, request_id, x_request_id)
    if guard is not None:
        guard.route(served).observe(time.perf_counter() - started, result.predictions)
    payload = {
        "predictions": result.predictions,
        "model_version": model.version,
        "model": model.name,
        "request_id": request_id,
    }
    if x_request_id is not None:
        payload["correlation_id"] = x_request_id
    if flagged:
        payload["out_of_range"] = flagged
    return json_response(payload, 200, request_id)


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


@router.get("/health", response_model=HealthResponse, summary="The process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="200 when a champion is loaded and smoke-tested; 503 with the reason otherwise",
    responses={503: {"model": ReadyResponse, "description": "Not ready, and why."}},
)
async def ready(server: Server) -> Any:
    server.ensure_started()
    champion = server.holder.champion
    if champion is not None:
        return {"status": "ready", "model": server.config.name, "model_version": champion.version}
    return JSONResponse(
        {
            "status": "not ready",
            "model": server.config.name,
            "model_version": None,
            "reason": server.not_ready_reason(),
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_NOT_READY)},
    )


@router.get(
    "/model", response_model=ModelResponse, summary="The serving version, its lineage, canary, errors"
)
async def model_info(server: Server) -> dict[str, Any]:
    server.ensure_started()
    holder = server.holder
    champion, canary = holder.champion, holder.canary
    info: dict[str, Any] = {"name": server.config.name, "version": None, "alias": CHAMPION}
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


@router.get(
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
async def metrics(server: Server) -> Response:
    body, content_type = server.metrics.render()
    return Response(body, media_type=content_type)


_TOKEN_HEADER = Header(description="Authorization: Bearer <token>.")
_UNAUTHORIZED = {"model": ErrorResponse, "description": "The bearer token is missing or wrong."}


@router.post(
    "/feedback",
    status_code=202,
    response_model=FeedbackAccepted,
    summary="The true label of a served row (by the server's request_id; a second label needs correction)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": FeedbackRequest.model_json_schema()}},
        }
    },
    responses={
        400: {"model": ErrorResponse, "description": "Malformed JSON."},
        401: _UNAUTHORIZED,
        404: {"model": ErrorResponse, "description": "Unknown or expired request id (or row)."},
        409: {"model": ErrorResponse, "description": "Already labelled; send correction: true to replace."},
        413: {"model": ErrorResponse, "description": f"Body over {FEEDBACK_MAX_BYTES} bytes."},
        415: ERRORS[415],
        422: {"model": ErrorResponse, "description": "Invalid body, or a label the target does not take."},
        501: {"model": ErrorResponse, "description": "This server keeps no inference log."},
        503: {"model": ErrorResponse, "description": "The inference log is full; retry later."},
    },
)
async def feedback(
    request: Request, server: Server, authorization: Annotated[str | None, _TOKEN_HEADER] = None
) -> Any:
    if not bearer_ok(authorization, server.feedback_token):
        return error_response("feedback token missing or wrong", "UNAUTHORIZED", 401, field="Authorization")
    if server.inference_log is None:
        return error_response(
            "this server keeps no inference log, so feedback has nowhere to go", "NO_INFERENCE_LOG", 501
        )
    try:
        raw = await read_body(request, FEEDBACK_MAX_BYTES, "the feedback body limit")
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InputError(400, f"malformed JSON: {exc}") from None
        try:
            body = FeedbackRequest.model_validate(payload)
        except ValidationError as exc:
            return _invalid(exc.errors())
        row_id, answered = server.answered.resolve(body.request_id)
        label = server.labels.check(body.label, answered.version)
        if server.answered.is_labelled(row_id) and not body.correction:
            raise FeedbackError(
                409,
                f"'{row_id}' already has a label; send \"correction\": true to replace it",
                "ALREADY_LABELLED",
                "request_id",
            )
    except InputError as exc:
        return error_response(exc.message, exc.code, exc.status, field=exc.field)
    now = datetime.now(UTC)
    try:
        ticket = server.inference_log.log_feedback(row_id, label, time=now, correction=body.correction)
        await server.durable(ticket)
    except (InferenceLogFull, InferenceLogClosed, JournalError) as exc:
        server.metrics.error("log_full")
        return error_response(
            f"feedback not recorded: {exc}",
            "INFERENCE_LOG_FULL",
            503,
            headers={"Retry-After": str(RETRY_AFTER_LOG_FULL)},
        )
    server.answered.label(row_id)
    return {"status": "accepted", "request_id": row_id, "correction": body.correction, "time": now}


@router.post(
    "/admin/reload",
    status_code=204,
    response_class=Response,
    summary="Re-read the aliases now (also retries a version that failed to load)",
    responses={
        401: _UNAUTHORIZED,
        415: ERRORS[415],
        422: {"model": ErrorResponse, "description": "Invalid query parameters."},
    },
)
async def reload(
    server: Server,
    wait: Annotated[bool, Query(description="Wait until the versions the aliases point at serve.")] = False,
    timeout: Annotated[float, Query(gt=0, le=600, description="Longest wait, in seconds.")] = 60.0,
    authorization: Annotated[str | None, _TOKEN_HEADER] = None,
) -> Response:
    if not bearer_ok(authorization, server.admin_token):
        return error_response("admin token missing or wrong", "UNAUTHORIZED", 401, field="Authorization")
    server.ensure_started()
    await run_in_threadpool(server.holder.refresh, force=True)
    if wait:
        await run_in_threadpool(server.holder.wait, timeout)
    return Response(status_code=204)


@router.get(
    "/canary",
    response_model=CanaryResponse,
    summary="Live guard statistics of the canary (or shadow) phase",
    responses={404: {"model": ErrorResponse, "description": "No canary serves now."}},
)
async def canary(server: Server) -> Any:
    guard = server.guard()
    if guard is None:
        why = (
            f"deploy strategy is '{server.strategy}'"
            if server.strategy not in ("canary", "shadow")
            else f"no version behind alias '{CANARY}' is loaded"
        )
        return error_response(f"no canary phase: {why}", "NO_CANARY", 404)
    return guard.snapshot()


# The app ---------------------------------------------------------------------------------------------------------
def create_app(
    config: PipelineConfig,
    *,
    inference_log: Any = None,
    holder: ModelHolder | None = None,
    start_polling: bool = True,
    alert: Callable[[str], None] | None = None,
) -> FastAPI:
    """The model server of ``config``'s pipeline.

    Args:
        config: The pipeline (its ``serving``, ``deploy`` and ``alerts`` sections are used).
        inference_log: Where served predictions and feedback go: an object with ``log_predictions(rows)``,
            ``log_feedback(request_id, label, time=None)``, ``start()``, ``close(timeout)`` and ``stats()``
            (:class:`mlops.serving.inference_log.InferenceLog`); None logs nothing.
        holder: The models (default: a new :class:`ModelHolder` that calls ``alert`` on a failed load).
        alert: Told why a new model version could not be loaded (``mlops serve`` passes
            :func:`mlops.airflow.alerts.model_server_alert`, the pipeline's alert routes); None only logs it.
        start_polling: Follow the aliases (first check at startup, then every ``serving.poll_interval_seconds``).

    Returns:
        The FastAPI app; its ``state.server`` is the :class:`ModelServer` (``await state.server.close()`` when
        the app runs without a lifespan).
    """
    holder = holder or ModelHolder(config, on_failure=alert)
    server = ModelServer(config, inference_log=inference_log, holder=holder, start_polling=start_polling)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        server.ensure_started()
        try:
            yield
        finally:
            await server.close()

    app = FastAPI(
        title=f"{config.name} model server", version="1", description=describe(config), lifespan=lifespan
    )
    app.state.server = server
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(router)
    paths = {route.path for route in app.routes if hasattr(route, "path")}
    app.add_middleware(JsonOnlyMiddleware)
    allowed_hosts = settings.serving_allowed_hosts()
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(MetricsMiddleware, metrics=server.metrics, paths=lambda: paths)
    components = predict_components(server.schema, config)
    predict_body = predict_body_doc(server.schema, config)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            schema["paths"]["/predict"]["post"]["requestBody"] = predict_body
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
    alert: Callable[[str], None] | None = None,
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
        alert: Told why a new model version could not be loaded (see :func:`create_app`).
    """
    import uvicorn

    inference_log = None
    if log_inferences:
        from mlops.serving.inference_log import InferenceLog

        inference_log = InferenceLog.from_config(config)
    app = create_app(config, inference_log=inference_log, alert=alert)
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
