"""Request bodies of the model server: every accepted shape gives training's frame, every bad one a 4xx naming
the field and the row."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.config import PipelineConfig, load_config
from mlops.serving.inputs import FeatureSpec, InputError, InputSchema

pytestmark = pytest.mark.unit

PIPELINES = Path(__file__).resolve().parents[2] / "include" / "pipelines"
ROW = {
    "amount": 12.5,
    "hour": 3,
    "merchant_category": "grocery",
    "country": "US",
    "card_present": "yes",
    "distance_from_home_km": None,  # nullable in fraud_detection.yaml
    "txn_count_24h": 2,
    "account_age_days": 400,
}
OTHER = {**ROW, "amount": 99.0, "distance_from_home_km": 1.5, "card_present": "no"}


@pytest.fixture(scope="module")
def fraud() -> PipelineConfig:
    return load_config(PIPELINES / "fraud_detection.yaml")


@pytest.fixture(scope="module")
def schema(fraud: PipelineConfig) -> InputSchema:
    return InputSchema.from_config(fraud)


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _error(schema: InputSchema, payload: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        schema.parse(payload if isinstance(payload, bytes) else _body(payload))
    error = caught.value
    assert 400 <= error.status < 500
    return error


# Accepted shapes ----------------------------------------------------------------------------------------------
def _split(rows: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(rows[0])[::-1]  # any column order
    return {"columns": columns, "data": [[row[c] for c in columns] for row in rows], "index": [0, 1]}


@pytest.mark.parametrize(
    "payload",
    [
        {"records": [ROW, OTHER]},
        [ROW, OTHER],
        {"dataframe_records": [ROW, OTHER]},
        {"dataframe_split": _split([ROW, OTHER])},
        {"inputs": [ROW, OTHER]},
        {"inputs": {k: [ROW[k], OTHER[k]] for k in ROW}},
        {"instances": [ROW, OTHER]},
        {"instances": {k: [ROW[k], OTHER[k]] for k in ROW}, "params": {}},
    ],
    ids=[
        "records",
        "bare-list",
        "dataframe_records",
        "dataframe_split",
        "inputs-records",
        "inputs-columns",
        "instances-records",
        "instances-columns-empty-params",
    ],
)
def test_every_accepted_shape_gives_the_same_frame(schema: InputSchema, payload: Any) -> None:
    parsed = schema.parse(_body(payload))
    frame = parsed.frame
    assert parsed.rows == 2
    assert list(frame.columns) == list(schema.names)
    assert frame["amount"].tolist() == [12.5, 99.0]
    assert math.isnan(frame.loc[0, "distance_from_home_km"]) and frame.loc[1, "distance_from_home_km"] == 1.5
    assert frame["card_present"].tolist() == ["yes", "no"]
    assert [r["amount"] for r in parsed.records()] == [12.5, 99.0]


def test_one_record_and_scalar_columns(schema: InputSchema) -> None:
    assert schema.parse(_body({"record": ROW})).rows == 1
    assert schema.parse(_body({"inputs": ROW})).frame["amount"].tolist() == [12.5]


def test_the_frame_has_the_dtypes_training_used(fraud: PipelineConfig, schema: InputSchema) -> None:
    from mlops.ml.training import prepare_frame

    parsed = schema.parse(_body({"records": [ROW, OTHER]}))
    trained = prepare_frame(pd.DataFrame([{**ROW, "is_fraud": 0}, {**OTHER, "is_fraud": 1}]), fraud)
    expected = trained[fraud.feature_names]
    pd.testing.assert_frame_equal(parsed.frame, expected)
    assert parsed.frame["distance_from_home_km"].dtype == np.float64
    assert parsed.frame["country"].dtype == object


def test_a_category_sent_as_a_number_becomes_its_text(schema: InputSchema) -> None:
    # Training read categories from files: a category that looks like a number was seen as its text.
    frame = schema.parse(_body({"record": {**ROW, "country": 7}})).frame
    assert frame["country"].tolist() == ["7"]


def test_the_signature_decides_columns_and_order_the_config_nullability(fraud: PipelineConfig) -> None:
    class Inputs:
        def to_dict(self) -> list[dict[str, Any]]:
            return [
                {"name": "distance_from_home_km", "type": "double"},
                {"name": "country", "type": "string"},
            ]

    class Signature:
        inputs = Inputs()

    schema = InputSchema.from_config(fraud, Signature())
    assert schema.names == ("distance_from_home_km", "country")
    assert schema.features[0] == FeatureSpec("distance_from_home_km", "numeric", nullable=True)
    frame = schema.parse(_body({"record": {"country": "US", "distance_from_home_km": None}})).frame
    assert list(frame.columns) == ["distance_from_home_km", "country"]
    assert _error(schema, {"record": ROW}).field == "amount"  # not in this model's signature


def test_all_numeric_models_get_one_float_block() -> None:
    schema = InputSchema(
        [FeatureSpec("a", "numeric"), FeatureSpec("b", "numeric")], max_rows=10, max_body_bytes=10_000
    )
    frame = schema.parse(b'{"records": [{"a": 1, "b": 2.5}, {"b": 0, "a": -1}]}').frame
    assert frame.to_dict("list") == {"a": [1.0, -1.0], "b": [2.5, 0.0]}
    assert frame.dtypes.tolist() == [np.float64, np.float64]


def test_concatenated_batches_keep_their_rows(schema: InputSchema) -> None:
    first = schema.parse(_body({"records": [ROW]}))
    second = schema.parse(_body({"records": [OTHER, ROW]}))
    frame = schema.concat([first, second])
    assert frame["amount"].tolist() == [12.5, 99.0, 12.5]


# Refused bodies ------------------------------------------------------------------------------------------------
def test_a_missing_field_is_named_with_its_row(schema: InputSchema) -> None:
    row = {k: v for k, v in OTHER.items() if k != "hour"}
    error = _error(schema, {"records": [ROW, row]})
    assert (error.status, error.field, error.row) == (422, "hour", 1)
    assert "row 1" in error.message and "'hour'" in error.message


def test_an_unknown_field_is_named(schema: InputSchema) -> None:
    error = _error(schema, {"record": {**ROW, "colour": "red"}})
    assert (error.status, error.field, error.row) == (422, "colour", 0)
    assert "unknown field 'colour'" in error.message and "amount" in error.message


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("amount", "12.5", "expected a number, got a string"),
        ("amount", True, "expected a number, got a boolean"),
        ("hour", [3], "expected a number, got a array"),
        ("country", {"code": "US"}, "expected a string (a category), got a object"),
        ("card_present", [False], "expected a string (a category), got a array"),
    ],
)
def test_a_wrong_type_is_named_with_its_row(schema: InputSchema, field: str, value: Any, words: str) -> None:
    error = _error(schema, {"records": [ROW, ROW, {**ROW, field: value}]})
    assert (error.status, error.field, error.row) == (422, field, 2)
    assert words in error.message and f"row 2, field '{field}'" in error.message


def test_categories_are_canonical_text_whatever_json_type_carries_them(schema: InputSchema) -> None:
    """3, 3.0 and "3" are one category, true and "True" another: the spelling training read from a file."""
    rows = [{**ROW, "country": value} for value in (3, 3.0, "3", True, "True", False, "007", 2.5)]
    frame = schema.parse_payload({"records": rows}).frame
    assert frame["country"].tolist() == ["3", "3", "3", "true", "true", "false", "007", "2.5"]


@pytest.mark.parametrize("field", ["amount", "country"])
def test_a_null_where_the_feature_is_not_nullable(schema: InputSchema, field: str) -> None:
    error = _error(schema, {"records": [ROW, {**ROW, field: None}]})
    assert (error.status, error.field, error.row) == (422, field, 1)
    assert "not nullable" in error.message


def test_nan_counts_as_null_and_infinity_is_refused(schema: InputSchema) -> None:
    assert (
        _error(
            schema,
            b'{"record": {"amount": NaN, "hour": 1, "merchant_category": "fuel", "country": "US", '
            b'"card_present": "no", "distance_from_home_km": 1, "txn_count_24h": 0, '
            b'"account_age_days": 1}}',
        ).field
        == "amount"
    )
    error = _error(schema, {"record": {**ROW, "hour": math.inf}})
    assert error.field == "hour" and "not a finite number" in error.message
    error = _error(schema, {"record": {**ROW, "hour": 10**400}})
    assert error.field == "hour" and "too large" in error.message


def test_an_empty_batch_is_refused(schema: InputSchema) -> None:
    for payload in (
        {"records": []},
        [],
        {"dataframe_split": {"columns": list(ROW), "data": []}},
        {"inputs": {k: [] for k in ROW}},
    ):
        error = _error(schema, payload)
        assert error.status == 422 and "empty batch" in error.message


def test_a_batch_over_the_row_limit_is_413(fraud: PipelineConfig) -> None:
    schema = InputSchema.from_config(fraud)
    limit = fraud.serving.max_batch_rows
    error = _error(schema, {"records": [ROW] * (limit + 1)})
    assert error.status == 413 and f"{limit + 1} rows" in error.message and "max_batch_rows" in error.message


def test_a_body_over_the_byte_limit_is_413() -> None:
    schema = InputSchema([FeatureSpec("a", "numeric")], max_rows=10, max_body_bytes=1024)
    error = _error(schema, b'{"record": {"a": ' + b" " * 2000 + b"1}}")
    assert error.status == 413 and "max_body_bytes" in error.message


@pytest.mark.parametrize("body", [b"{", b'{"records": [1,]}', b"\xff\xfe", b"", b"[" * 100_000])
def test_malformed_json_is_400(schema: InputSchema, body: bytes) -> None:
    schema = InputSchema(schema.features, max_rows=10, max_body_bytes=1_000_000)
    assert _error(schema, body).status == 400


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (42, None),
        ("records", None),
        ({"rows": [ROW]}, "rows"),
        ({"records": [ROW], "record": ROW}, None),
        ({}, None),
        ({"records": ROW}, "records"),
        ({"record": [ROW]}, "record"),
        ({"records": [ROW, [1, 2]]}, None),
        ({"inputs": 3}, "inputs"),
        ({"inputs": {**{k: [v] for k, v in ROW.items()}, "amount": 1}}, "amount"),
        ({"inputs": {**{k: [v] for k, v in ROW.items()}, "amount": [1, 2]}}, "inputs"),
        ({"dataframe_split": [ROW]}, "dataframe_split"),
        ({"dataframe_split": {"columns": list(ROW)}}, "dataframe_split"),
        (
            {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())[:-1]]}},
            "dataframe_split.data",
        ),
        ({"dataframe_split": {"columns": [*ROW, "amount"], "data": [[*ROW.values(), 1]]}}, "amount"),
        ({"dataframe_split": {"columns": [1, 2], "data": []}}, "dataframe_split.columns"),
        ({"dataframe_records": [ROW], "params": {"threshold": 0.3}}, "params"),
        ({"records": [ROW], "params": {}}, "params"),
    ],
)
def test_a_wrong_shape_is_422(schema: InputSchema, payload: Any, field: str | None) -> None:
    error = _error(schema, payload)
    assert error.status == 422
    assert error.field == field
    assert error.to_dict()["detail"] == error.message


def test_the_openapi_record_schema_lists_every_feature(schema: InputSchema) -> None:
    record = schema.record_json_schema()
    assert record["required"] == list(schema.names) and record["additionalProperties"] is False
    assert record["properties"]["amount"] == {"type": "number"}
    assert record["properties"]["distance_from_home_km"] == {"type": ["number", "null"]}
    assert record["properties"]["country"] == {"type": "string"}
