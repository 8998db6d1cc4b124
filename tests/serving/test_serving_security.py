"""The model server trusts only itself (issue 12, items 3 and 4): server-made request ids, feedback only for
answered rows, once unless corrected, with a label of the target's kind, small bodies, tokens on feedback and
admin, JSON-only POSTs, an optional Host allow-list, the config's bounds on inputs, no answer from a NaN.

A real scikit-learn pipeline (scaler and logistic regression on breast_cancer's 30 features) is put in the
holder directly: no MLflow store, so these tests run in a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlops.config import PipelineConfig, settings
from mlops.serving.app import create_app
from mlops.serving.holder import CHAMPION, LoadedModel, ModelHolder
from mlops.serving.inputs import InputSchema

pytestmark = pytest.mark.unit
TOKEN = "admin-secret-for-tests"


class MemoryLog:
    """The inference log's interface, in memory."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.feedback: list[tuple[str, Any, datetime | None, bool]] = []

    def log_predictions(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    def log_feedback(
        self, request_id: str, label: Any, time: datetime | None = None, *, correction: bool = False
    ) -> None:
        self.feedback.append((request_id, label, time, correction))

    def start(self) -> None: ...

    def close(self, timeout: float = 30) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {"buffered_rows": 0}


def _model(config: PipelineConfig, *, task: str = "classification") -> LoadedModel:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    names = config.feature_names
    frame = pd.DataFrame(rng.uniform(0.01, 0.2, size=(60, len(names))), columns=names)
    if task == "classification":
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, np.arange(60) % 2)
    else:
        model = make_pipeline(StandardScaler(), LinearRegression()).fit(frame, rng.normal(size=60))
    return LoadedModel(
        name=config.name,
        version=4,
        alias=CHAMPION,
        model=model,
        signature=None,
        schema=InputSchema.from_config(config),
        input_example=frame.head(2),
        run_id=None,
        tags={},
        loaded_at=datetime.now(UTC),
        load_seconds=0.0,
        is_classifier=task == "classification",
    )


def _client(config: PipelineConfig, log: Any = None, **model: Any) -> TestClient:
    holder = ModelHolder(config)
    holder.champion = _model(config, **model)
    holder.checked_at = datetime.now(UTC)
    return TestClient(create_app(config, inference_log=log, holder=holder, start_polling=False))


@pytest.fixture
def env(mlops_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(settings.SERVING_ADMIN_TOKEN_ENV, TOKEN)
    monkeypatch.delenv(settings.SERVING_FEEDBACK_TOKEN_ENV, raising=False)
    monkeypatch.delenv(settings.SERVING_ALLOWED_HOSTS_ENV, raising=False)
    return mlops_home


def _config(breast_cancer: PipelineConfig, **serving: Any) -> PipelineConfig:
    return breast_cancer.model_copy(update={"serving": breast_cancer.serving.model_copy(update=serving)})


def _record(config: PipelineConfig, value: float = 0.1) -> dict[str, float]:
    return dict.fromkeys(config.feature_names, value)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served(env: Path, breast_cancer: PipelineConfig) -> Iterator[tuple[TestClient, MemoryLog]]:
    log = MemoryLog()
    with _client(breast_cancer, log) as http:
        yield http, log


def _predict(http: TestClient, config: PipelineConfig, rows: int = 1, **headers: str) -> dict[str, Any]:
    response = http.post("/predict", json={"records": [_record(config)] * rows}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# Feedback you can trust -----------------------------------------------------------------------------------
def test_request_ids_are_the_servers_and_the_clients_is_a_correlation_id(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig
) -> None:
    http, log = served
    first = _predict(http, breast_cancer, **{"X-Request-ID": "same"})
    second = _predict(http, breast_cancer, **{"X-Request-ID": "same"})
    assert first["request_id"] != second["request_id"] and first["correlation_id"] == "same"
    assert [r["correlation_id"] for r in log.rows] == ["same", "same"]
    # Feedback joins on the server's id only: the client's id is unknown to it.
    refused = http.post("/feedback", json={"request_id": "same", "label": 1}, headers=AUTH)
    assert refused.status_code == 422  # not even the shape of a server id


def test_forged_duplicate_and_corrected_feedback(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig
) -> None:
    http, log = served
    forged = http.post("/feedback", json={"request_id": "0123456789abcdef01234567", "label": 1}, headers=AUTH)
    assert forged.status_code == 404 and forged.json()["code"] == "UNKNOWN_REQUEST_ID"
    assert "unknown or expired" in forged.json()["detail"]

    rid = _predict(http, breast_cancer)["request_id"]
    assert http.post("/feedback", json={"request_id": rid, "label": 1}, headers=AUTH).status_code == 202
    again = http.post("/feedback", json={"request_id": rid, "label": 0}, headers=AUTH)
    assert again.status_code == 409 and again.json()["code"] == "ALREADY_LABELLED"
    corrected = http.post("/feedback", json={"request_id": rid, "label": 0, "correction": True}, headers=AUTH)
    assert corrected.status_code == 202 and corrected.json()["correction"] is True
    assert [(r, label, c) for r, label, _, c in log.feedback] == [(rid, 1, False), (rid, 0, True)]


def test_batch_rows_are_labelled_one_by_one(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig
) -> None:
    http, log = served
    rid = _predict(http, breast_cancer, rows=3)["request_id"]
    assert [r["request_id"] for r in log.rows] == [f"{rid}:0", f"{rid}:1", f"{rid}:2"]
    whole = http.post("/feedback", json={"request_id": rid, "label": 1}, headers=AUTH)
    assert whole.status_code == 422 and f"'{rid}:<row>'" in whole.json()["detail"]
    assert (
        http.post("/feedback", json={"request_id": f"{rid}:3", "label": 1}, headers=AUTH).status_code == 404
    )
    assert (
        http.post("/feedback", json={"request_id": f"{rid}:2", "label": 1}, headers=AUTH).status_code == 202
    )
    assert (
        http.post("/feedback", json={"request_id": f"{rid}:1", "label": 0}, headers=AUTH).status_code == 202
    )


@pytest.mark.parametrize("label", ["malignant", True, 2, 0.5, "1"])
def test_a_label_the_target_does_not_take_is_422(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig, label: Any
) -> None:
    http, log = served
    rid = _predict(http, breast_cancer)["request_id"]
    response = http.post("/feedback", json={"request_id": rid, "label": label}, headers=AUTH)
    assert response.status_code == 422 and response.json()["code"] == "INVALID_LABEL", response.text
    assert "one of 0, 1" in response.json()["detail"] and log.feedback == []
    # 1.0 is the number 1: accepted, logged as the class.
    assert http.post("/feedback", json={"request_id": rid, "label": 1.0}, headers=AUTH).status_code == 202
    assert log.feedback[0][1] == 1 and type(log.feedback[0][1]) is int


def test_without_allowed_values_the_models_classes_decide(env: Path, breast_cancer: PipelineConfig) -> None:
    columns = {k: v for k, v in breast_cancer.expectations.columns.items() if k != breast_cancer.target}
    config = breast_cancer.model_copy(
        update={"expectations": breast_cancer.expectations.model_copy(update={"columns": columns})}
    )
    with _client(config, MemoryLog()) as http:
        rid = _predict(http, config)["request_id"]
        wrong = http.post("/feedback", json={"request_id": rid, "label": 7}, headers=AUTH)
        assert wrong.status_code == 422 and "the classes of v4" in wrong.json()["detail"]
        assert http.post("/feedback", json={"request_id": rid, "label": 1}, headers=AUTH).status_code == 202


def test_feedback_bodies_are_small_and_json_and_time_is_the_servers(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig
) -> None:
    http, log = served
    rid = _predict(http, breast_cancer)["request_id"]
    big = http.post("/feedback", json={"request_id": rid, "label": "x" * 10_000}, headers=AUTH)
    assert big.status_code == 413 and "4096 bytes" in big.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length
        yield b'{"request_id": "' + b"a" * 8000 + b'"}'

    chunked = http.post("/feedback", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert chunked.status_code == 413 and "over 4096 bytes" in chunked.json()["detail"]
    malformed = http.post(
        "/feedback", content=b'{"request_id": ', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["detail"]
    for when in (0, "2999-01-01T00:00:00Z"):
        pinned = http.post("/feedback", json={"request_id": rid, "label": 1, "time": when}, headers=AUTH)
        assert pinned.status_code == 422 and "the server records when" in pinned.json()["detail"]
    accepted = http.post("/feedback", json={"request_id": rid, "label": 1}, headers=AUTH)
    assert accepted.status_code == 202
    assert abs(datetime.fromisoformat(accepted.json()["time"]) - datetime.now(UTC)).total_seconds() < 60
    assert log.feedback[0][2] == datetime.fromisoformat(accepted.json()["time"])


def test_expired_ids_are_404(env: Path, breast_cancer: PipelineConfig) -> None:
    config = _config(breast_cancer, answered_ids=2)
    with _client(config, MemoryLog()) as http:
        first, *_ = [_predict(http, config)["request_id"] for _ in range(3)]
        expired = http.post("/feedback", json={"request_id": first, "label": 1}, headers=AUTH)
        assert expired.status_code == 404 and "older than the 2 most recent" in expired.json()["detail"]
        assert len(http.app.state.server.answered) == 2  # type: ignore[attr-defined]


# Tokens ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_feedback_and_admin_without_the_token_are_401(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig, header: str | None
) -> None:
    http, log = served
    rid = _predict(http, breast_cancer)["request_id"]
    headers = {"Authorization": header} if header else {}
    feedback = http.post("/feedback", json={"request_id": rid, "label": 1}, headers=headers)
    assert feedback.status_code == 401 and feedback.json()["code"] == "UNAUTHORIZED"
    assert http.post("/admin/reload", headers=headers).status_code == 401
    assert log.feedback == []
    assert http.post("/feedback", json={"request_id": rid, "label": 1}, headers=AUTH).status_code == 202
    assert http.post("/admin/reload", headers=AUTH).status_code == 204


def test_a_separate_feedback_token_does_not_open_admin(
    env: Path, breast_cancer: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.SERVING_FEEDBACK_TOKEN_ENV, "labeller")
    labeller = {"Authorization": "Bearer labeller"}
    with _client(breast_cancer, MemoryLog()) as http:
        rid = _predict(http, breast_cancer)["request_id"]
        assert http.post("/feedback", json={"request_id": rid, "label": 1}, headers=AUTH).status_code == 401
        assert (
            http.post("/feedback", json={"request_id": rid, "label": 1}, headers=labeller).status_code == 202
        )
        assert http.post("/admin/reload", headers=labeller).status_code == 401


def test_without_a_token_setting_the_server_generates_one_in_the_home(
    mlops_home: Path, breast_cancer: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.SERVING_ADMIN_TOKEN_ENV, raising=False)
    monkeypatch.delenv(settings.SERVING_FEEDBACK_TOKEN_ENV, raising=False)
    with _client(breast_cancer) as http:
        assert http.post("/admin/reload").status_code == 401  # never open by default
        file = mlops_home / "serving.token"
        assert file.stat().st_mode & 0o777 == 0o600
        token = file.read_text().strip()
        assert len(token) >= 40 and settings.serving_admin_token() == token
        assert http.post("/admin/reload", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    with _client(breast_cancer):  # a restart keeps the token its clients know
        assert file.read_text().strip() == token


# Strict requests ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_cross_site_form_posts_are_415(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig, content_type: str
) -> None:
    import json

    http, log = served
    body = json.dumps({"records": [_record(breast_cancer)]})
    for path, headers in (("/predict", {}), ("/admin/reload", AUTH), ("/feedback", AUTH)):
        response = http.post(path, content=body, headers={**headers, "Content-Type": content_type})
        assert response.status_code == 415, (path, response.text)
        assert (
            response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE" and content_type in response.json()["detail"]
        )
    no_type = http.post("/predict", content=body)  # a body without a Content-Type is not JSON either
    assert no_type.status_code == 415 and log.rows == []
    charset = http.post("/predict", content=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 200
    assert http.post("/admin/reload", headers=AUTH).status_code == 204  # no body, no type: fine


def test_allowed_hosts_refuse_other_host_headers(
    env: Path, breast_cancer: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.SERVING_ALLOWED_HOSTS_ENV, "127.0.0.1, model-server")
    with _client(breast_cancer, MemoryLog()) as http:
        evil = http.post(
            "/predict", json={"record": _record(breast_cancer)}, headers={"Host": "evil.example"}
        )
        assert evil.status_code == 400
        good = http.post(
            "/predict", json={"record": _record(breast_cancer)}, headers={"Host": "model-server"}
        )
        assert good.status_code == 200
        assert http.get("/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200


def test_params_null_is_refused_as_the_schema_says(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig
) -> None:
    http, _ = served
    records = [_record(breast_cancer)]
    refused = http.post("/predict", json={"dataframe_records": records, "params": None})
    assert refused.status_code == 422 and refused.json()["field"] == "params"
    assert http.post("/predict", json={"dataframe_records": records, "params": {}}).status_code == 200
    schema = http.get("/openapi.json").json()["components"]["schemas"]["PredictDataframeRecords"]
    assert schema["properties"]["params"]["type"] == "object"


def test_a_chunked_body_over_the_limit_says_so_plainly(env: Path, breast_cancer: PipelineConfig) -> None:
    config = _config(breast_cancer, max_body_bytes=2048)
    with _client(config) as http:

        def chunks() -> Iterator[bytes]:
            for _ in range(4):
                yield b" " * 1024

        response = http.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["detail"] == (
            "request body too large: over 2048 bytes, the limit is 2048 bytes (serving.max_body_bytes)"
        )


def test_malformed_json_is_400_on_both_routes(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig
) -> None:
    """Not FastAPI's 422 ``"0: JSON decode error"``: a 400 that says where the JSON breaks."""
    http, _ = served
    rid = _predict(http, breast_cancer)["request_id"]
    for route, body in (
        ("/predict", b'{"records": [{'),
        ("/feedback", f'{{"request_id": "{rid}", '.encode()),
    ):
        response = http.post(route, content=body, headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 400, (route, response.text)
        detail = response.json()["detail"]
        assert detail.startswith("malformed JSON") and "line 1" in detail and "decode error" not in detail, (
            detail
        )


def test_a_chunked_10_mb_body_gets_a_plain_413_on_both_routes(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig
) -> None:
    """10 MB sent without Content-Length: the answer used to read "request body too large: more, the limit
    is ..."; it says how much was read past and which setting holds the limit."""
    http, log = served

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1_000_000

    limits = {
        "/predict": f"{breast_cancer.serving.max_body_bytes} bytes (serving.max_body_bytes)",
        "/feedback": "4096 bytes",
    }
    for route, limit in limits.items():
        response = http.post(route, content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 413, (route, response.text)
        detail = response.json()["detail"]
        assert detail.startswith("request body too large: over ") and f"the limit is {limit}" in detail, (
            detail
        )
        assert "more, the limit" not in detail
    assert log.rows == [] and log.feedback == []


# Out-of-range inputs --------------------------------------------------------------------------------------
def test_huge_inputs_are_flagged_by_default(
    served: tuple[TestClient, MemoryLog], breast_cancer: PipelineConfig
) -> None:
    http, log = served
    rows = [_record(breast_cancer), _record(breast_cancer, 1e308)]
    response = http.post("/predict", json={"records": rows})
    assert response.status_code == 200 and response.json()["out_of_range"] == [1]
    assert [r["out_of_range"] for r in log.rows] == [False, True]
    assert 'mlops_serving_out_of_range_rows_total{action="flag"} 1.0' in http.get("/metrics").text
    assert "out_of_range" not in _predict(http, breast_cancer)


def test_huge_inputs_are_refused_with_reject(env: Path, breast_cancer: PipelineConfig) -> None:
    config = _config(breast_cancer, out_of_range="reject")
    log = MemoryLog()
    with _client(config, log) as http:
        response = http.post("/predict", json={"record": _record(config, 1e308)})
        assert response.status_code == 422 and response.json()["code"] == "OUT_OF_RANGE"
        assert response.json()["field"] == "mean_radius" and response.json()["row"] == 0
        assert "max 60" in response.json()["detail"] and log.rows == []
        assert 'mlops_serving_out_of_range_rows_total{action="reject"} 1.0' in http.get("/metrics").text
        assert _predict(http, config)["predictions"] in ([0], [1])


def test_off_does_not_look(env: Path, breast_cancer: PipelineConfig) -> None:
    config = _config(breast_cancer, out_of_range="off")
    with _client(config, MemoryLog()) as http:
        response = http.post("/predict", json={"record": _record(config, 100.0)})
        assert response.status_code == 200 and "out_of_range" not in response.json()


def test_a_non_finite_prediction_is_not_answered(env: Path, breast_cancer: PipelineConfig) -> None:
    """Regression: every feature at 1e308 overflows the scaler; the NaN is refused, not sent as null."""
    config = _config(breast_cancer, out_of_range="off")
    log = MemoryLog()
    with _client(config, log, task="regression") as http:
        response = http.post("/predict", json={"record": _record(config, 1e308)})
        assert response.status_code == 422 and response.json()["code"] == "NON_FINITE_PREDICTION"
        assert log.rows == []


# The stack turns it all on ---------------------------------------------------------------------------------
def test_the_stack_generates_both_tokens_and_gives_each_only_where_needed(tmp_path: Path) -> None:
    from mlops.tooling import stack
    from mlops.tooling.stack_native import NativeStack, generate_secrets

    secrets = generate_secrets()
    assert (
        len(secrets["MLOPS_SERVING_ADMIN_TOKEN"]) >= 40 and len(secrets["MLOPS_SERVING_FEEDBACK_TOKEN"]) >= 40
    )
    assert secrets["MLOPS_SERVING_ADMIN_TOKEN"] != secrets["MLOPS_SERVING_FEEDBACK_TOKEN"]
    native = NativeStack.prepare(tmp_path / "stack")
    assert (tmp_path / "stack" / "stack.env").stat().st_mode & 0o777 == 0o600
    s = native.settings
    assert (
        NativeStack.prepare(tmp_path / "stack").settings.serving_admin_token == s.serving_admin_token
    )  # kept
    server = stack.service_env(s, "native", "model-server")
    assert server["MLOPS_SERVING_ADMIN_TOKEN"] == s.serving_admin_token
    assert server["MLOPS_SERVING_FEEDBACK_TOKEN"] == s.serving_feedback_token
    assert server["MLOPS_SERVING_ALLOWED_HOSTS"] == "127.0.0.1,localhost,model-server"
    worker = stack.service_env(s, "native", "airflow-worker")
    assert worker["MLOPS_SERVING_ADMIN_TOKEN"] == s.serving_admin_token  # the deploy step's reload
    assert "MLOPS_SERVING_FEEDBACK_TOKEN" not in worker
    compose = stack.compose_file()["services"]["model-server"]["environment"]
    assert compose["MLOPS_SERVING_FEEDBACK_TOKEN"] == "${MLOPS_SERVING_FEEDBACK_TOKEN:?set it in .env}"
    assert {"MLOPS_SERVING_ADMIN_TOKEN", "MLOPS_SERVING_FEEDBACK_TOKEN"} <= set(
        stack.StackSettings.defaults().missing_secrets()
    )


def test_the_versions_reference_range_is_flagged(env: Path, breast_cancer: PipelineConfig) -> None:
    from dataclasses import replace

    from mlops.serving.ranges import RangeCheck

    holder = ModelHolder(breast_cancer)
    reference = pd.DataFrame(dict.fromkeys(breast_cancer.feature_names, [0.05, 0.2]))
    holder.champion = replace(
        _model(breast_cancer), ranges=RangeCheck.for_version(breast_cancer, 4, reference)
    )
    holder.checked_at = datetime.now(UTC)
    wild = {**_record(breast_cancer), "worst_texture": 1e6}
    with TestClient(create_app(breast_cancer, holder=holder, start_polling=False)) as http:
        body = http.post("/predict", json={"records": [_record(breast_cancer), wild]}).json()
    assert body["out_of_range"] == [1]
