"""The model server against real registered versions of breast_cancer in a real MLflow SQLite store: predict,
readiness, lineage, metrics, feedback, hot swap, a version that fails to load, canary and shadow routing, the
micro-batcher, and the OpenAPI spec fuzzed with schemathesis (never a 5xx)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from artifacts import three_versions
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from mlops import registry
from mlops.config import Canary, Deploy, PipelineConfig
from mlops.config import settings as mlops_settings
from mlops.data.inference_log import read_feedback, read_inference_log
from mlops.serving.app import create_app
from mlops.serving.batcher import MicroBatcher, PredictionError
from mlops.serving.holder import (
    CANARY,
    CHAMPION,
    LoadedModel,
    ModelHolder,
    ModelLoadError,
    load_version,
    smoke_test,
)
from mlops.serving.inference_log import InferenceLog, InferenceLogFull
from mlops.serving.inputs import InputSchema

pytestmark = pytest.mark.unit
NAME = "breast_cancer"


@dataclass
class Trained:
    config: PipelineConfig
    records: list[dict[str, float]]  # unlabelled rows, in the request format


@pytest.fixture(scope="module")
def trained(module_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]) -> Trained:
    """Versions 1, 2 and 3 registered (one batch each); v1 is the champion."""
    config = three_versions(breast_cancer, bc_files)
    frame = pd.read_csv(bc_files[2]).drop(columns=[config.target])
    return Trained(
        config, [{k: float(v) for k, v in row.items()} for row in frame.head(40).to_dict("records")]
    )


_LOADED: dict[tuple[int, str], LoadedModel] = {}


def cached_loader(config: PipelineConfig, version: int, alias: str) -> LoadedModel:
    """The real loader, once per (version, alias) in this module: loading takes about a second."""
    key = (version, alias)
    if key not in _LOADED:
        _LOADED[key] = load_version(config, version, alias)
    return _LOADED[key]


def loaded_holder(config: PipelineConfig, **kwargs: Any) -> ModelHolder:
    holder = ModelHolder(config, loader=kwargs.pop("loader", cached_loader), **kwargs)
    holder.refresh()
    assert holder.wait(120)
    return holder


def set_alias(alias: str, version: int | None) -> None:
    client = registry.client()
    if version is None:
        client.delete_registered_model_alias(NAME, alias)
    else:
        client.set_registered_model_alias(NAME, alias, version)


JSON = {"Content-Type": "application/json"}


def auth() -> dict[str, str]:
    """The admin (and feedback) token the app generated into this module's MLOPS_HOME."""
    return {"Authorization": f"Bearer {mlops_settings.serving_admin_token()}"}


class FakeLog:
    """The inference log's interface, in memory."""

    def __init__(self, *, full: bool = False) -> None:
        self.rows: list[dict[str, Any]] = []
        self.feedback: list[tuple[str, Any, datetime | None, bool]] = []
        self.full = full
        self.started = self.closed = False

    def log_predictions(self, rows: list[dict[str, Any]]) -> None:
        if self.full:
            raise InferenceLogFull(NAME, "memory://", 10, len(rows), 10, None)
        self.rows.extend(rows)

    def log_feedback(
        self, request_id: str, label: Any, time: datetime | None = None, *, correction: bool = False
    ) -> None:
        if self.full:
            raise InferenceLogFull(NAME, "memory://", 10, 1, 10, None)
        self.feedback.append((request_id, label, time, correction))

    def start(self) -> None:
        self.started = True

    def flush(self) -> None:
        pass

    def close(self, timeout: float = 30) -> None:
        self.closed = True

    def stats(self) -> dict[str, Any]:
        return {"buffered_rows": len(self.rows), "written_rows": 0, "last_error": None}


@pytest.fixture
def client(trained: Trained) -> Iterator[tuple[TestClient, FakeLog]]:
    log = FakeLog()
    app = create_app(
        trained.config, inference_log=log, holder=loaded_holder(trained.config), start_polling=False
    )
    with TestClient(app) as test_client:
        yield test_client, log
    assert log.closed  # the lifespan's shutdown closed the log


def _wait_for(condition: Callable[[], Any], seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# Predict ---------------------------------------------------------------------------------------------------------
def test_predict_one_record_and_a_batch_name_the_version(
    client: tuple[TestClient, FakeLog], trained: Trained
) -> None:
    http, log = client
    model = _LOADED[(1, CHAMPION)].model
    expected = model.predict(pd.DataFrame(trained.records[:5])).tolist()

    one = http.post("/predict", json={"record": trained.records[0]}, headers={"X-Request-ID": "req-1"})
    assert one.status_code == 200, one.text
    first = one.json()["request_id"]  # the server's id; the client's is the correlation id
    assert one.json() == {
        "predictions": expected[:1],
        "model_version": 1,
        "model": NAME,
        "request_id": first,
        "correlation_id": "req-1",
    }
    assert len(first) == 24 and one.headers["X-Request-ID"] == first

    batch = http.post("/predict", json={"records": trained.records[:5]})
    assert batch.status_code == 200
    body = batch.json()
    assert body["predictions"] == expected and body["model_version"] == 1
    assert len(body["request_id"]) == 24 and batch.headers["X-Request-ID"] == body["request_id"]
    assert body["request_id"] != first and "correlation_id" not in body

    again = http.post("/predict", json=trained.records[:2]).json()["request_id"]
    # A batch's rows are logged as '<id>:<row>', one row as its request id.
    assert [r["request_id"] for r in log.rows] == [first] + [
        f"{body['request_id']}:{i}" for i in range(5)
    ] + [f"{again}:{i}" for i in range(2)]
    assert [r["correlation_id"] for r in log.rows] == ["req-1"] + [None] * 7
    assert not any(r["out_of_range"] for r in log.rows)
    row = log.rows[0]
    assert (row["model_version"], row["route"], row["prediction"]) == (1, CHAMPION, expected[0])
    assert row["inputs"] == trained.records[0] and row["time"].tzinfo is not None


def test_mlflow_scoring_formats_are_accepted(client: tuple[TestClient, FakeLog], trained: Trained) -> None:
    http, _ = client
    frame = pd.DataFrame(trained.records[:3])
    expected = http.post("/predict", json={"records": trained.records[:3]}).json()["predictions"]
    split = frame.to_dict(orient="split")
    for body in (
        {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        {"dataframe_records": trained.records[:3]},
        {"inputs": frame.to_dict(orient="list")},
        {"instances": trained.records[:3]},
    ):
        response = http.post("/predict", json=body)
        assert response.status_code == 200, (body.keys(), response.text)
        assert response.json()["predictions"] == expected


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        (b'{"records": [', 400, None),
        (b'{"record": {"mean_radius": 1}}', 422, "mean_texture"),
        (b'{"rows": []}', 422, "rows"),
        (b'{"records": []}', 422, "records"),
        (b"12", 422, None),
    ],
)
def test_bad_bodies_are_4xx_naming_the_field(
    client: tuple[TestClient, FakeLog], content: bytes, status: int, field: str | None
) -> None:
    http, log = client
    response = http.post("/predict", content=content, headers={"X-Request-ID": "bad", **JSON})
    assert response.status_code == status
    assert response.json()["field"] == field and response.json()["code"] == "INVALID_INPUT"
    assert len(response.headers["X-Request-ID"]) == 24  # the server's id, even for a refusal
    assert log.rows == []


def test_wrong_type_and_null_name_field_and_row(client: tuple[TestClient, FakeLog], trained: Trained) -> None:
    http, _ = client
    rows = [trained.records[0], {**trained.records[1], "worst_area": "big"}]
    detail = http.post("/predict", json={"records": rows}).json()
    assert (detail["field"], detail["row"]) == ("worst_area", 1)
    assert detail["detail"] == "row 1, field 'worst_area': expected a number, got a string ('big')"
    detail = http.post("/predict", json={"records": [{**trained.records[0], "mean_area": None}]}).json()
    assert (detail["field"], detail["row"]) == ("mean_area", 0) and "not nullable" in detail["detail"]


def test_too_large_is_413(client: tuple[TestClient, FakeLog], trained: Trained) -> None:
    http, _ = client
    limits = trained.config.serving
    too_many = http.post("/predict", json={"records": [trained.records[0]] * (limits.max_batch_rows + 1)})
    assert too_many.status_code == 413 and "max_batch_rows" in too_many.json()["detail"]
    too_big = http.post("/predict", content=b" " * (limits.max_body_bytes + 1), headers=JSON)
    assert too_big.status_code == 413 and "max_body_bytes" in too_big.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(limits.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    assert http.post("/predict", content=chunks(), headers=JSON).status_code == 413


def test_an_invalid_request_id_header_is_422(client: tuple[TestClient, FakeLog], trained: Trained) -> None:
    http, _ = client
    response = http.post("/predict", json={"record": trained.records[0]}, headers={"X-Request-ID": "x" * 129})
    assert response.status_code == 422 and response.json()["field"] == "header.X-Request-ID"


# Readiness, model info, metrics ----------------------------------------------------------------------------------
def test_ready_only_once_a_champion_is_loaded(trained: Trained) -> None:
    holder = ModelHolder(trained.config, loader=cached_loader)
    with TestClient(create_app(trained.config, holder=holder, start_polling=False)) as http:
        ready = http.get("/ready")
        assert ready.status_code == 503 and "have not been read yet" in ready.json()["reason"]
        refused = http.post("/predict", json={"record": trained.records[0]})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert refused.json()["code"] == "NOT_READY"
        assert http.get("/health").json() == {"status": "ok"}

        assert http.post("/admin/reload", params={"wait": "true"}, headers=auth()).status_code == 204
        assert http.get("/ready").json() == {
            "status": "ready",
            "model": NAME,
            "model_version": 1,
            "reason": None,
        }
        assert http.post("/predict", json={"record": trained.records[0]}).json()["model_version"] == 1


def test_model_shows_the_version_and_its_lineage(client: tuple[TestClient, FakeLog]) -> None:
    http, _ = client
    info = http.get("/model").json()
    version = registry.get_version(NAME, 1)
    assert (info["name"], info["version"], info["alias"], info["strategy"]) == (NAME, 1, CHAMPION, "direct")
    assert info["run_id"] == version.run_id
    assert info["lineage"]["mlops.data_hash"] == version.tags["mlops.data_hash"]
    assert info["lineage"]["deploy.status"] == "champion"
    assert not any(key.startswith(registry.AUDIT_PREFIX) for key in info["lineage"])
    assert datetime.fromisoformat(info["loaded_at"]) <= datetime.now(UTC) and info["load_seconds"] > 0
    assert len(info["inputs"]) == 30 and info["inputs"][0] == {
        "name": "mean_radius",
        "type": "numeric",
        "nullable": False,
    }
    assert info["canary"] is None and info["last_load_error"] is None


def test_metrics_expose_the_series(client: tuple[TestClient, FakeLog], trained: Trained) -> None:
    http, _ = client
    http.post("/predict", json={"records": trained.records[:3]})
    http.post("/predict", content=b"{", headers=JSON)
    text = http.get("/metrics").text
    for series in (
        'mlops_serving_http_requests_total{method="POST",path="/predict",status="200"} 1.0',
        'mlops_serving_http_requests_total{method="POST",path="/predict",status="400"} 1.0',
        'mlops_serving_errors_total{kind="input"} 1.0',
        'mlops_serving_predictions_total{route="champion",version="1"} 3.0',
        'mlops_serving_batch_rows_count{alias="champion"} 1.0',
        'mlops_serving_batch_rows_sum{alias="champion"} 3.0',
        'mlops_serving_model_version{alias="champion"} 1.0',
        "mlops_serving_model_ready 1.0",
        'mlops_serving_model_load_failures_total{alias="champion"} 0.0',
        "mlops_serving_inference_log_buffered_rows 3.0",
        'mlops_serving_http_request_duration_seconds_bucket{le="0.0005",path="/predict"}',
    ):
        assert series in text, series


# Feedback and the inference log ----------------------------------------------------------------------------------
def test_feedback_is_logged_with_the_servers_id_and_time(
    client: tuple[TestClient, FakeLog], trained: Trained
) -> None:
    http, log = client
    one = http.post("/predict", json={"record": trained.records[0]}).json()["request_id"]
    batch = http.post("/predict", json={"records": trained.records[:3]}).json()["request_id"]
    accepted = http.post("/feedback", json={"request_id": one, "label": 1}, headers=auth())
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["request_id"] == one and accepted.json()["correction"] is False
    assert (
        http.post("/feedback", json={"request_id": f"{batch}:2", "label": 0}, headers=auth()).status_code
        == 202
    )
    assert [(rid, label, correction) for rid, label, _, correction in log.feedback] == [
        (one, 1, False),
        (f"{batch}:2", 0, False),
    ]
    assert all(when is not None and when.tzinfo is not None for _, _, when, _ in log.feedback)
    for bad in (
        {"label": 1},
        {"request_id": "", "label": 1},
        {"request_id": one, "label": [1]},
        {"request_id": one, "label": 1, "extra": 0},
        {"request_id": one, "label": 1, "time": "2999-01-01T00:00:00Z"},
        {"request_id": one, "label": 1, "time": 0},
    ):
        response = http.post("/feedback", json=bad, headers=auth())
        assert response.status_code == 422 and response.json()["code"] == "INVALID_REQUEST", bad
    assert len(log.feedback) == 2


def test_a_full_inference_log_gives_503_and_no_prediction(trained: Trained) -> None:
    log = FakeLog(full=True)
    app = create_app(
        trained.config, inference_log=log, holder=loaded_holder(trained.config), start_polling=False
    )
    with TestClient(app) as http:
        response = http.post("/predict", json={"record": trained.records[0]})
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert "predictions" not in response.json() and response.json()["code"] == "INFERENCE_LOG_FULL"
        app.state.server.answered.add("abc", 1, 1)  # answered before the log filled up
        assert (
            http.post("/feedback", json={"request_id": "abc", "label": 0}, headers=auth()).status_code == 503
        )
        assert 'mlops_serving_errors_total{kind="log_full"} 2.0' in http.get("/metrics").text


def test_without_an_inference_log_feedback_is_501(trained: Trained) -> None:
    app = create_app(trained.config, holder=loaded_holder(trained.config), start_polling=False)
    with TestClient(app) as http:
        assert http.post("/predict", json={"record": trained.records[0]}).status_code == 200
        assert (
            http.post("/feedback", json={"request_id": "ab", "label": 0}, headers=auth()).status_code == 501
        )


def test_the_real_inference_log_gets_predictions_and_feedback(trained: Trained, tmp_path: Path) -> None:
    uri = str(tmp_path / "inference")
    log = InferenceLog(NAME, uri, flush_seconds=60)
    app = create_app(
        trained.config, inference_log=log, holder=loaded_holder(trained.config), start_polling=False
    )
    with TestClient(app) as http:
        served = http.post("/predict", json={"records": trained.records[:2]}, headers={"X-Request-ID": "a1"})
        rid = served.json()["request_id"]
        assert (
            http.post("/feedback", json={"request_id": f"{rid}:1", "label": 1}, headers=auth()).status_code
            == 202
        )
    # The app's shutdown closed (and so flushed) the log.
    logged = read_inference_log(uri, NAME)
    assert logged["request_id"].tolist() == [f"{rid}:0", f"{rid}:1"]
    assert logged["route"].tolist() == [CHAMPION] * 2 and logged["correlation_id"].tolist() == ["a1", "a1"]
    assert logged["out_of_range"].tolist() == [False, False]
    assert logged["prediction"].tolist() == served.json()["predictions"]
    assert logged["input.mean_radius"].tolist() == [r["mean_radius"] for r in trained.records[:2]]
    feedback = read_feedback(uri, NAME)
    assert feedback["label"].tolist() == [1] and feedback["request_id"].tolist() == [f"{rid}:1"]
    assert feedback["correction"].tolist() == [False]


# Hot swap and failed loads ---------------------------------------------------------------------------------------
def test_admin_reload_swaps_in_the_new_champion(client: tuple[TestClient, FakeLog], trained: Trained) -> None:
    http, _ = client
    try:
        set_alias(CHAMPION, 2)
        assert http.post("/admin/reload", params={"wait": "true"}, headers=auth()).status_code == 204
        assert http.post("/predict", json={"record": trained.records[0]}).json()["model_version"] == 2
        assert http.get("/model").json()["version"] == 2
    finally:
        set_alias(CHAMPION, 1)
    assert http.post("/admin/reload", params={"wait": "true"}, headers=auth()).status_code == 204
    assert http.post("/predict", json={"record": trained.records[0]}).json()["model_version"] == 1


def test_a_champion_that_fails_to_load_keeps_the_old_one_serving(trained: Trained) -> None:
    import mlflow

    failures: list[str] = []
    holder = loaded_holder(trained.config, on_failure=failures.append)
    source = registry.get_version(NAME, 3).source  # models:/m-...: the logged model's own folder
    location = mlflow.get_logged_model(source.removeprefix("models:/")).artifact_location
    shutil.rmtree(unquote(urlparse(location).path))
    app = create_app(trained.config, inference_log=FakeLog(), holder=holder, start_polling=False)
    try:
        set_alias(CHAMPION, 3)
        with TestClient(app) as http:
            assert http.post("/admin/reload", params={"wait": "true"}, headers=auth()).status_code == 204
            assert http.post("/predict", json={"record": trained.records[0]}).json()["model_version"] == 1
            assert http.get("/ready").status_code == 200
            info = http.get("/model").json()
            assert info["version"] == 1
            assert info["last_load_error"]["version"] == 3 and info["load_errors"][CHAMPION]["version"] == 3
            assert "v3 (alias champion) could not be loaded" in info["last_load_error"]["message"]
            assert "v1 serves on" in info["last_load_error"]["message"]
            assert (
                'mlops_serving_model_load_failures_total{alias="champion"} 1.0' in http.get("/metrics").text
            )
            assert len(failures) == 1 and "v3" in failures[0]

            holder.refresh()  # polling does not retry the broken version (nor alert again)
            holder.wait(30)
            assert len(failures) == 1
    finally:
        set_alias(CHAMPION, 1)
    holder.refresh()
    holder.wait(30)
    assert holder.errors == {} and holder.champion is not None and holder.champion.version == 1


def test_the_served_holder_alerts_the_pipeline_routes(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.airflow import alerts

    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(alerts, "send_event", lambda *args, **kwargs: sent.append(args))
    app = create_app(trained.config, start_polling=False, alert=alerts.model_server_alert(trained.config))
    app.state.server.holder.on_failure("v9 could not be loaded")
    assert sent == [
        (
            NAME,
            trained.config.alerts,
            "failure",
            "model server could not load a new model version",
            "v9 could not be loaded",
            None,
        )
    ]


class _Predictor:
    def __init__(self, output: Callable[[pd.DataFrame], Any]) -> None:
        self.output = output

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.output(frame)


def _fake_model(output: Callable[[pd.DataFrame], Any], version: int = 7) -> LoadedModel:
    from mlops.serving.inputs import FeatureSpec

    schema = InputSchema([FeatureSpec("x", "numeric")], max_rows=100, max_body_bytes=10_000)
    return LoadedModel(
        name="toy",
        version=version,
        alias=CHAMPION,
        model=_Predictor(output),
        signature=None,
        schema=schema,
        input_example=pd.DataFrame({"x": [1.0, 2.0, 3.0]}),
        run_id=None,
        tags={},
        loaded_at=datetime.now(UTC),
        load_seconds=0.0,
    )


@pytest.mark.parametrize(
    ("output", "words"),
    [
        (lambda frame: np.zeros(len(frame) - 1), "2 predictions for 3 example rows"),
        (lambda frame: np.full(len(frame), np.nan), "3 non-finite predictions"),
        (lambda frame: np.array([None] * len(frame), dtype=object), "missing predictions"),
        (lambda frame: 1 / 0, "cannot predict its input example: ZeroDivisionError"),
    ],
)
def test_the_smoke_test_refuses_a_model_that_misbehaves(output: Callable, words: str) -> None:
    smoke_test(_fake_model(lambda frame: np.zeros(len(frame))))
    with pytest.raises(ModelLoadError, match=words):
        smoke_test(_fake_model(output))


# Micro-batching -------------------------------------------------------------------------------------------------
def test_concurrent_requests_share_predict_calls_and_get_their_own_rows(trained: Trained) -> None:
    app = create_app(trained.config, holder=loaded_holder(trained.config), start_polling=False)
    model = _LOADED[(1, CHAMPION)].model
    records = trained.records[:24]
    expected = model.predict(pd.DataFrame(records)).tolist()

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as http:
            responses = await asyncio.gather(
                *[http.post("/predict", json={"records": records[i : i + 2]}) for i in range(0, 24, 2)]
            )
            metrics = await http.get("/metrics")
        await app.state.server.close()
        return [*responses, metrics]

    *responses, metrics = asyncio.run(main())
    assert [p for r in responses for p in r.json()["predictions"]] == expected
    calls = next(
        line for line in metrics.text.splitlines() if line.startswith("mlops_serving_batch_rows_count")
    )
    assert float(calls.split()[-1]) < 12  # fewer predict calls than requests


def test_one_bad_request_does_not_fail_its_batch() -> None:
    def predict(frame: pd.DataFrame) -> np.ndarray:
        if (frame["x"] > 100).any():
            raise ValueError("x is out of range")
        return frame["x"].to_numpy() * 2

    model = _fake_model(predict)
    parse = model.schema.parse
    batcher = MicroBatcher(lambda: model, max_rows=100, wait_ms=2)

    async def main() -> list[Any]:
        return await asyncio.gather(
            batcher.predict(parse(b'{"records": [{"x": 1}, {"x": 2}]}')),
            batcher.predict(parse(b'{"record": {"x": 500}}')),
            batcher.predict(parse(b'{"record": {"x": 3}}')),
            return_exceptions=True,
        )

    first, bad, third = asyncio.run(main())
    assert (first.predictions, first.model.version) == ([2.0, 4.0], 7)
    assert third.predictions == [6.0]
    assert isinstance(bad, PredictionError) and bad.client_error and "x is out of range" in str(bad)


def test_each_batch_uses_one_model_version() -> None:
    versions = iter(range(1, 100))
    batcher = MicroBatcher(
        lambda: _fake_model(lambda f: f["x"].to_numpy(), next(versions)), max_rows=3, wait_ms=0
    )
    parse = _fake_model(lambda f: f).schema.parse

    async def main() -> list[Any]:
        return await asyncio.gather(
            *[batcher.predict(parse(b'{"records": [{"x": 1}, {"x": 2}]}')) for _ in range(4)]
        )

    results = asyncio.run(main())
    # max_rows 3 and 2 rows each: one request per batch, one model reference per batch.
    assert [r.model.version for r in results] == [1, 2, 3, 4]


# Canary and shadow -----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _serving_a_canary(trained: Trained, strategy: str) -> Iterator[tuple[TestClient, FakeLog]]:
    """The app with v1 as champion and v2 behind alias ``canary`` under ``strategy`` (the alias is removed after)."""
    deploy = Deploy(strategy=strategy, canary=Canary(traffic_share=0.5))
    config = trained.config.model_copy(update={"deploy": deploy})
    log = FakeLog()
    try:
        set_alias(CANARY, 2)
        app = create_app(config, inference_log=log, holder=loaded_holder(config), start_polling=False)
        with TestClient(app) as http:
            yield http, log
    finally:
        if registry.alias_version(NAME, CANARY) is not None:
            set_alias(CANARY, None)


def test_canary_routes_a_stable_share_and_keeps_guard_statistics(trained: Trained) -> None:
    with _serving_a_canary(trained, "canary") as (http, log):
        served = {}
        for i in range(40):
            body = {"record": trained.records[i]}
            response = http.post("/predict", json=body, headers={"X-Request-ID": f"req-{i}"})
            served[f"req-{i}"] = response.json()["model_version"]
        assert set(served.values()) == {1, 2}
        assert 8 <= list(served.values()).count(2) <= 32
        again = [
            http.post("/predict", json={"record": trained.records[0]}, headers={"X-Request-ID": rid})
            for rid in list(served)[:10]
        ]
        assert [r.json()["model_version"] for r in again] == [served[rid] for rid in list(served)[:10]]
        assert {row["route"] for row in log.rows if row["model_version"] == 2} == {CANARY}

        stats = http.get("/canary").json()
        assert (stats["canary_version"], stats["champion_version"], stats["strategy"]) == (2, 1, "canary")
        assert stats["canary"]["requests"] + stats["champion"]["requests"] == 50
        assert stats["canary"]["errors"] == 0 and stats["canary"]["p99_ms"] > 0
        assert sum(stats["canary"]["class_counts"].values()) == stats["canary"]["rows"]
        assert http.get("/model").json()["canary"]["version"] == 2

        set_alias(CANARY, None)
        assert http.post("/admin/reload", headers=auth()).status_code == 204
        assert http.get("/canary").status_code == 404
        assert all(
            http.post("/predict", json={"record": trained.records[0]}, headers={"X-Request-ID": rid}).json()[
                "model_version"
            ]
            == 1
            for rid in served
        )


def test_shadow_scores_a_copy_and_never_returns_it(trained: Trained) -> None:
    with _serving_a_canary(trained, "shadow") as (http, log):
        for i in range(10):
            response = http.post(
                "/predict", json={"record": trained.records[i]}, headers={"X-Request-ID": f"s{i}"}
            )
            assert response.json()["model_version"] == 1
        shadows = _wait_for(
            lambda: [r for r in log.rows if r["route"] == "shadow"] if len(log.rows) >= 20 else None
        )
        assert sorted(r["correlation_id"] for r in shadows) == sorted(f"s{i}" for i in range(10))
        assert {r["model_version"] for r in shadows} == {2}
        stats = http.get("/canary").json()
        assert stats["strategy"] == "shadow" and stats["traffic_share"] is None
        assert stats["champion"]["requests"] == 10 and stats["canary"]["requests"] == 10


def test_the_direct_strategy_has_no_canary(client: tuple[TestClient, FakeLog]) -> None:
    http, _ = client
    response = http.get("/canary")
    assert response.status_code == 404 and "strategy is 'direct'" in response.json()["detail"]


# The OpenAPI spec, fuzzed ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api_schema(trained: Trained) -> Any:
    app = create_app(
        trained.config, inference_log=FakeLog(), holder=loaded_holder(trained.config), start_polling=False
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_generated_requests_never_get_a_5xx(api_schema: Any, mode: GenerationMode) -> None:
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /predict", "POST /feedback", "GET /canary"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            case.call_and_validate(checks=checks, headers=auth())

        try:
            fuzz()
        except Unsatisfiable:  # nothing to break in an operation without parameters or body
            assert mode is GenerationMode.NEGATIVE and not operation.body, operation.label


def test_loading_leaves_no_temporary_files_behind(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    loaded = load_version(trained.config, 2, CHAMPION)
    smoke_test(loaded)
    assert loaded.version == 2 and loaded.input_example is not None
    assert list(private.iterdir()) == []


def test_route_statistics_summarise_latency_and_predictions() -> None:
    from mlops.serving.metrics import RouteStats

    regression = RouteStats(classification=False, reservoir=100)
    for i in range(1000):
        regression.observe(i / 1000, [float(i % 10)], error=i % 100 == 0)
    snapshot = regression.snapshot()
    assert (snapshot["requests"], snapshot["errors"], snapshot["rows"]) == (1000, 10, 1000)
    assert snapshot["error_rate"] == 0.01 and snapshot["class_counts"] is None
    assert snapshot["mean"] == pytest.approx(4.5) and snapshot["std"] == pytest.approx(
        np.std([i % 10 for i in range(1000)], ddof=1)
    )
    assert 300 < snapshot["p50_ms"] < 700 and snapshot["p99_ms"] > 900  # from a 100-latency reservoir
    assert len(regression._latencies) == 100

    classification = RouteStats(classification=True)
    classification.observe(0.002, [0, 1, 1])
    assert classification.snapshot()["class_counts"] == {"0": 1, "1": 2}
    assert classification.snapshot()["mean"] is None
