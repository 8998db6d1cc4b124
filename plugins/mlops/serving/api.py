"""The model server's HTTP contract: request and response bodies, error answers and the OpenAPI document.

:mod:`mlops.serving.app` routes requests; what goes over the wire is described here, once.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from starlette.requests import ClientDisconnect

from mlops.serving.holder import CHAMPION
from mlops.serving.inputs import InputError, InputSchema, body_too_large

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)

#: The server's request id in every answer; a client's value in a request is kept as its correlation id.
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = r"^[!-~]{1,128}$"
#: Largest ``POST /feedback`` body: a label is a few dozen bytes.
FEEDBACK_MAX_BYTES = 4096
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_NOT_READY = 5
RETRY_AFTER_LOG_FULL = 1


# Documented bodies ------------------------------------------------------------------------------------------
class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="One prediction per row, in the order sent.")
    model_version: int = Field(description="The registered model version that computed every prediction.")
    model: str = Field(description="The registered model (the pipeline's name).")
    request_id: str = Field(
        description="The server's id of this request, for feedback: row i of a batch is '<request_id>:<i>'."
    )
    correlation_id: str | None = Field(
        default=None, description="The X-Request-ID the client sent, if any (logged; not for feedback)."
    )
    out_of_range: list[int] | None = Field(
        default=None,
        description="Rows (0-based) with a value outside the config's bounds (serving.out_of_range: flag).",
    )


class ErrorResponse(BaseModel):
    detail: str = Field(description="What is wrong and where (field, row).")
    code: str = Field(description="INVALID_INPUT, INVALID_REQUEST, NOT_READY, INFERENCE_LOG_FULL, ...")
    field: str | None = Field(default=None, description="The feature, key or parameter concerned.")
    row: int | None = Field(default=None, description="The row concerned (0-based).")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        pattern=r"^[0-9a-f]{1,64}(:[0-9]{1,9})?$",
        description="The server's request_id of a prediction; row i of a batch: '<request_id>:<i>'.",
    )
    label: StrictBool | StrictInt | FiniteFloat | Annotated[StrictStr, Field(max_length=256)] = Field(
        description="The true label: a value the target takes (its allowed values, or the model's classes)."
    )
    correction: StrictBool = Field(
        default=False, description="Replace the row's earlier label (else a second label is 409)."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_client_time(cls, data: Any) -> Any:
        if isinstance(data, dict) and "time" in data:
            raise ValueError("'time' is not accepted: the server records when a label arrives")
        return data


class FeedbackAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    request_id: str = Field(description="The row labelled.")
    correction: bool = False
    time: datetime = Field(description="When the server recorded the label (UTC).")


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


ERRORS = {
    400: {"model": ErrorResponse, "description": "Malformed JSON."},
    413: {
        "model": ErrorResponse,
        "description": "Body larger than serving.max_body_bytes, or more rows than serving.max_batch_rows.",
    },
    415: {"model": ErrorResponse, "description": "The body is not declared as application/json."},
    422: {
        "model": ErrorResponse,
        "description": "Wrong shape, missing or unknown field, wrong type, null in a feature that is not "
        "nullable, empty batch, a value out of range (serving.out_of_range: reject), a non-finite "
        "prediction. The message names the field and the row.",
    },
    503: {
        "model": ErrorResponse,
        "description": "No champion loaded yet, or the inference log is full: retry "
        "after the Retry-After header's seconds.",
    },
}


# Answers ---------------------------------------------------------------------------------------------------------
async def read_body(request: Request, limit: int, setting: str = "serving.max_body_bytes") -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InputError(400, f"Content-Length is not a number: {declared[:40]!r}") from None
        if size > limit:
            raise body_too_large(size, limit, setting)
    chunks = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise body_too_large(None, limit, setting)
            chunks.append(chunk)
    except ClientDisconnect:
        raise InputError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def json_response(
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


def error_body(detail: str, code: str, field: str | None = None) -> dict[str, Any]:
    """The body of every error answer (:class:`ErrorResponse`)."""
    return {"detail": detail, "code": code, "field": field, "row": None}


def error_response(
    detail: str, code: str, status: int, *, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error answer of a route that has no request id to echo."""
    return JSONResponse(error_body(detail, code, field), status_code=status, headers=headers)


def unavailable(message: str, code: str, retry_after: int, request_id: str) -> Response:
    return json_response(
        error_body(message, code),
        503,
        request_id,
        {"Retry-After": str(retry_after)},
    )


def describe(config: PipelineConfig) -> str:
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
        '`{"predictions": [...], "model_version": N, "model": name, "request_id": id}`; row i of a batch '
        "is `<id>:<i>` for `POST /feedback` (feedback token). POSTs are `application/json` only; "
        "`/admin/*` wants the admin token. Errors are "
        '`{"detail", "code", "field", "row"}`: 400 malformed JSON, 401 no token, 413 too large, 415 not JSON, '
        "422 anything else about the body, 503 not ready or inference log full (with `Retry-After`)."
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


def predict_components(schema: InputSchema, config: PipelineConfig) -> dict[str, Any]:
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


def predict_body_doc(schema: InputSchema, config: PipelineConfig) -> dict[str, Any]:
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
