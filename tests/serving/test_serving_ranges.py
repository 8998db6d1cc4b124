"""The config's bounds on live inputs (:mod:`mlops.serving.ranges`): min/max by one comparison, allowed
categories and numbers, nulls never out of range, the first problem named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from shared_fixtures import PIPELINES

from mlops.config import PipelineConfig, load_config
from mlops.serving.inputs import InputSchema
from mlops.serving.ranges import RangeCheck

pytestmark = pytest.mark.unit


def _check(config: PipelineConfig, records: list[dict[str, Any]]) -> tuple[list[int], Any]:
    parsed = InputSchema.from_config(config).parse(json.dumps({"records": records}).encode())
    return RangeCheck.from_config(config).check(parsed)


def _fraud() -> tuple[PipelineConfig, dict[str, Any]]:
    config = load_config(PIPELINES / "fraud_detection.yaml")
    record: dict[str, Any] = {}
    for feature in config.features:
        rule = config.expectations.columns.get(feature.name)
        if feature.type == "categorical":
            record[feature.name] = rule.allowed[0] if rule is not None and rule.allowed else "x"
        else:
            low = rule.min if rule is not None and rule.min is not None else 0.0
            record[feature.name] = low
    return config, record


def test_in_range_rows_pass_and_nulls_never_count(breast_cancer: PipelineConfig) -> None:
    ok = dict.fromkeys(breast_cancer.feature_names, 0.1)
    assert _check(breast_cancer, [ok, ok]) == ([], None)
    nullable = breast_cancer.model_copy(
        update={"features": [f.model_copy(update={"nullable": True}) for f in breast_cancer.features]}
    )
    assert _check(nullable, [{**ok, "mean_radius": None}]) == ([], None)


def test_min_and_max_name_the_first_row_and_field(breast_cancer: PipelineConfig) -> None:
    ok = dict.fromkeys(breast_cancer.feature_names, 0.1)
    rows, error = _check(breast_cancer, [ok, {**ok, "worst_area": 20000.0}, {**ok, "mean_radius": -1.0}])
    assert rows == [1, 2]
    assert (error.status, error.code, error.field, error.row) == (422, "OUT_OF_RANGE", "worst_area", 1)
    assert "max 10000" in error.message


def test_allowed_categories_compare_canonically() -> None:
    config, record = _fraud()
    assert _check(config, [record]) == ([], None)
    rows, error = _check(config, [record, {**record, "country": "ZZ"}])
    assert rows == [1] and error.field == "country" and "one of CA, DE" in error.message


def test_off_checks_nothing(breast_cancer: PipelineConfig) -> None:
    config = breast_cancer.model_copy(
        update={"serving": breast_cancer.serving.model_copy(update={"out_of_range": "off"})}
    )
    huge = dict.fromkeys(config.feature_names, 1e308)
    assert _check(config, [huge]) == ([], None)
