"""One typing of every feature, end to end, on generated schemas (hypothesis).

Each example draws a pipeline: features of every kind the kit accepts (floats, integers, nullable integers,
integer-coded categoricals, booleans, words, numeric-looking strings such as "007", float codes), a target
(binary integer labels, text labels, or a regression target), `allowed` values written the way YAML would
hold them, and a batch format (CSV or Parquet). Then the closed loop, on real parts: the batch is validated
and trained on (MLflow store), the model is promoted and served (the FastAPI app in-process, with the real
inference log) to clients that send each category in the JSON type of their choice (3, "3", 3.0; true,
"True"), feedback labels arrive, monitoring analyses the window, and the retraining batch it writes is
validated and trained on again. For every schema: the clean window is `ok` and the retraining batch passes.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from shared_fixtures import isolated_home
from starlette.testclient import TestClient

from mlops import registry
from mlops.config import PipelineConfig
from mlops.config import settings as mlops_settings
from mlops.data.batches import ingest_batch, validate_and_file
from mlops.data.canonical import canonical_frame
from mlops.ml import training
from mlops.monitoring.window import retrain_batch
from mlops.services.monitor import monitor_window
from mlops.serving.app import create_app
from mlops.serving.inference_log import InferenceLog

pytestmark = pytest.mark.service

ROWS = 240

#: kind -> (declared type, values a batch holds); a value of None is a missing value.
KINDS: dict[str, tuple[str, list[Any]]] = {
    "float": ("numeric", []),
    "integer": ("numeric", []),
    "nullable_integer": ("numeric", []),
    "int_codes": ("categorical", [0, 1, 2, 3, 4]),
    "boolean": ("categorical", [True, False]),
    "words": ("categorical", ["north", "south", "east", "west"]),
    "numeric_looking": ("categorical", ["007", "12", "3.0", "1e3"]),
    "float_codes": ("categorical", [0.5, 1.5, 2.5]),
}


@dataclass(frozen=True)
class Schema:
    features: tuple[tuple[str, str, bool], ...]  # (name, kind, with missing values)
    target: str  # "binary", "text_labels" or "regression"
    fmt: str  # "csv" or "parquet"
    seed: int


def _draw_column(kind: str, missing: bool, rng: np.random.Generator) -> pd.Series:
    if kind == "float":
        values = pd.Series(rng.normal(50, 10, ROWS))
    elif kind in ("integer", "nullable_integer"):
        values = pd.Series(
            rng.integers(0, 100, ROWS), dtype="Int64" if kind == "nullable_integer" else "int64"
        )
    else:
        choices = KINDS[kind][1]
        values = pd.Series([choices[i] for i in rng.integers(0, len(choices), ROWS)], dtype=object)
        if kind == "boolean":
            values = values.astype(bool)
    if missing:
        holes = rng.random(ROWS) < 0.1
        values = values.astype("Float64" if kind == "nullable_integer" else object)
        values[holes] = None
        if kind == "nullable_integer":
            values = values.astype("Int64")
    return values


def build(schema: Schema) -> tuple[PipelineConfig, pd.DataFrame]:
    """The config (as a user would write it) and a batch of ROWS rows whose target depends on the features."""
    rng = np.random.default_rng(schema.seed)
    frame = pd.DataFrame({name: _draw_column(kind, missing, rng) for name, kind, missing in schema.features})
    signal = np.zeros(ROWS)
    for name, kind, _ in schema.features:
        codes = pd.factorize(frame[name].astype(str))[0] if KINDS[kind][0] == "categorical" else None
        signal += codes if codes is not None else pd.to_numeric(frame[name]).fillna(0).to_numpy() / 25
    noisy = signal + rng.normal(0, 0.3, ROWS)
    if schema.target == "regression":
        frame["y"] = noisy
    else:
        above = noisy > np.median(noisy)
        frame["y"] = np.where(above, 1, 0) if schema.target == "binary" else np.where(above, "yes", "no")
    columns: dict[str, Any] = {}
    for name, kind, _ in schema.features:
        if KINDS[kind][0] == "categorical":
            columns[name] = {"allowed": KINDS[kind][1]}  # as YAML holds them: ints, booleans, strings
        elif kind == "float":
            columns[name] = {"min": 0, "max": 100}
    if schema.target != "regression":
        columns["y"] = {"allowed": [0, 1] if schema.target == "binary" else ["no", "yes"]}
    config = PipelineConfig.model_validate(
        {
            "name": "roundtrip",
            "task": "regression" if schema.target == "regression" else "classification",
            "data": {"source": f"landing/{{ds}}.{schema.fmt}", "format": schema.fmt},
            "target": "y",
            "features": [
                {"name": name, "type": KINDS[kind][0], "nullable": missing}
                for name, kind, missing in schema.features
            ],
            "expectations": {"columns": columns},
            "model": {
                "estimator": "sklearn.linear_model.Ridge"
                if schema.target == "regression"
                else "sklearn.linear_model.LogisticRegression",
                "params": {} if schema.target == "regression" else {"max_iter": 500},
            },
            "gate": {
                "primary_metric": "rmse" if schema.target == "regression" else "accuracy",
                "threshold": 1e6 if schema.target == "regression" else 0.0,
            },
            # Typing is under test, not the model: live performance on 240 rows against a holdout of 48 is noise.
            "monitoring": {"min_rows": 50, "performance": {"min_labels": 50, "max_drop": 1e6}},
        }
    )
    return config, frame


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _json_value(value: Any, kind: str, i: int) -> Any:
    """A category in the JSON type a client might choose: 3, "3" or 3.0; true or "True"."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if kind == "int_codes":
        return (int(value), str(int(value)), float(value))[i % 3]
    if kind == "boolean":
        return (bool(value), str(bool(value)))[i % 2]
    if kind in ("integer", "nullable_integer"):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def run_loop(schema: Schema, home: Path, template: Path) -> None:
    """Validate, train, promote, serve, log, monitor and retrain one generated pipeline; assert each step."""
    config, frame = build(schema)
    kinds = {name: kind for name, kind, _ in schema.features}
    with isolated_home(home, template):
        batch_file = _write(frame, home / f"first.{schema.fmt}", schema.fmt)
        accepted = validate_and_file(config, ingest_batch(config, str(batch_file)))
        assert accepted.success, accepted.summary
        trained = training.train_model(config, accepted.batch)
        version = registry.register_version(config.name, trained.model_uri, trained.run_id, trained.tags)
        registry.promote(config.name, version, None, audit={"reason": "round trip"})

        start = datetime.now(UTC) - timedelta(minutes=1)
        app = create_app(config, inference_log=InferenceLog.from_config(config))
        with TestClient(app) as client:
            for _ in range(600):
                if client.get("/ready").status_code == 200:
                    break
                time.sleep(0.1)
            records = frame.drop(columns=["y"]).to_dict("records")
            for i, row in enumerate(records):
                body = {"record": {name: _json_value(row[name], kinds[name], i) for name in row}}
                reply = client.post("/predict", json=body, headers={"X-Request-ID": f"r{i}"})
                assert reply.status_code == 200, (body, reply.text)
                assert reply.json()["model_version"] == version
                # Feedback joins on the server's request id, with the token the server generated in the home.
                label = {"request_id": reply.json()["request_id"], "label": _label(frame["y"].iat[i])}
                token = {"Authorization": f"Bearer {mlops_settings.serving_admin_token()}"}
                answer = client.post("/feedback", json=label, headers=token)
                assert answer.status_code == 202, (label, answer.text)
        end = datetime.now(UTC) + timedelta(minutes=1)

        outcome = monitor_window(config, start, end, report=False)
        analysis = outcome.analysis
        assert analysis.rows == ROWS and analysis.labelled_rows == ROWS
        assert analysis.quality is not None and analysis.quality["success"], analysis.quality
        assert outcome.decision.status == "ok", outcome.decision.reasons

        live = retrain_batch(config, start, end)
        retrained = validate_and_file(config, ingest_batch(config, live))  # raises if quarantined
        assert retrained.success and retrained.batch.rows == ROWS
        again = training.train_model(config, retrained.batch)
        assert again.metrics


kinds_strategy = st.sampled_from(sorted(KINDS))
feature_strategy = st.tuples(kinds_strategy, st.booleans()).map(
    lambda drawn: (drawn[0], drawn[1] and drawn[0] not in ("integer", "float"))
)


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    features = draw(st.lists(feature_strategy, min_size=1, max_size=4))
    return Schema(
        features=tuple((f"f{i}", kind, missing) for i, (kind, missing) in enumerate(features)),
        target=draw(st.sampled_from(["binary", "text_labels", "regression"])),
        fmt=draw(st.sampled_from(["csv", "parquet"])),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    made: list[Path] = []

    def fresh() -> Path:
        made.append(tmp_path_factory.mktemp("roundtrip"))
        return made[-1]

    yield fresh
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


# The case first: integer-coded categoricals read from CSV, served as JSON numbers and strings.
@example(schema=Schema((("f0", "int_codes", False), ("f1", "float", False)), "binary", "csv", 7))
@example(
    schema=Schema(
        tuple((f"f{i}", kind, kind not in ("integer", "float")) for i, kind in enumerate(sorted(KINDS))),
        "text_labels",
        "parquet",
        11,
    )
)
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schema=schemas())
def test_every_generated_schema_trains_serves_monitors_ok_and_retrains(
    schema: Schema, homes: Any, mlflow_template: Path
) -> None:
    run_loop(schema, homes(), mlflow_template)


def test_canonical_frame_types_a_parquet_and_a_csv_batch_alike(tmp_path: Path) -> None:
    """The same batch from CSV and from Parquet gives the same canonical frame, and applying it twice is a no-op."""
    from mlops.data.reading import read_batch

    schema = Schema(
        tuple((f"f{i}", kind, kind not in ("integer", "float")) for i, kind in enumerate(sorted(KINDS))),
        "binary",
        "csv",
        3,
    )
    config, frame = build(schema)
    from_csv = read_batch(_write(frame, tmp_path / "b.csv", "csv"), "csv", config)
    from_parquet = read_batch(_write(frame, tmp_path / "b.parquet", "parquet"), "parquet", config)
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=True)
    pd.testing.assert_frame_equal(canonical_frame(from_csv, config), from_csv)
    categorical = [name for name, kind, _ in schema.features if KINDS[kind][0] == "categorical"]
    for name in categorical:  # canonical text, with NaN for a missing value
        assert {type(v) for v in from_csv[name].dropna()} == {str}, name
    # Each category in its one spelling: booleans folded, codes without ".0", text kept ("007"; "3.0" is "3").
    expected = {
        "boolean": {"true", "false"},
        "float_codes": {"0.5", "1.5", "2.5"},
        "int_codes": {"0", "1", "2", "3", "4"},
        "numeric_looking": {"007", "12", "3", "1e3"},
        "words": {"north", "south", "east", "west"},
    }
    for name, kind, _ in schema.features:
        if kind in expected:
            assert set(from_csv[name].dropna()) == expected[kind], (name, kind)
