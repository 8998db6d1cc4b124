"""Input ranges on live inputs (:mod:`mlops.serving.ranges`): the config's bounds (min/max by one comparison,
allowed categories and numbers, nulls never out of range, the first problem named), and for features the config
leaves unbounded, the range of the serving version's reference, loaded with the version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from shared_fixtures import PIPELINES

from mlops.config import PipelineConfig, load_config
from mlops.serving.inputs import InputSchema
from mlops.serving.ranges import RangeCheck

pytestmark = pytest.mark.unit


def _check(
    config: PipelineConfig, records: list[dict[str, Any]], ranges: RangeCheck | None = None
) -> tuple[list[int], Any]:
    parsed = InputSchema.from_config(config).parse(json.dumps({"records": records}).encode())
    return (ranges or RangeCheck.from_config(config)).check(parsed)


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


def _reference(config: PipelineConfig, rows: int = 50) -> pd.DataFrame:
    """A reference as training stores it: features (numbers 10..10+rows-1), target and prediction."""
    frame = pd.DataFrame({name: [10.0 + i for i in range(rows)] for name in config.feature_names})
    frame[config.target] = [i % 2 for i in range(rows)]
    frame["prediction"] = frame[config.target]
    return frame


def test_unbounded_features_are_checked_against_the_references_range(breast_cancer: PipelineConfig) -> None:
    """``worst_texture`` has no configured bound: before, any value passed; now the reference's range (10..59,
    widened by 25 % of its span: -2.25 -> 0 .. 71.25) applies. Configured bounds stay the config's."""
    ranges = RangeCheck.for_version(breast_cancer, 3, _reference(breast_cancer))
    configured = breast_cancer.expectations.columns
    ok = {name: 0.1 if name in configured else 20.0 for name in breast_cancer.feature_names}
    assert _check(breast_cancer, [ok, {**ok, "worst_texture": 71.0}], ranges) == ([], None)
    assert _check(breast_cancer, [{**ok, "worst_texture": 1e308}]) == ([], None)  # the config alone
    rows, error = _check(
        breast_cancer, [ok, {**ok, "worst_texture": 1e308}, {**ok, "worst_texture": -1}], ranges
    )
    assert rows == [1, 2] and (error.field, error.row) == ("worst_texture", 1)
    assert "min 0, max 71.25; from the reference of v3" in error.message
    # A configured bound wins over the reference: mean_radius is [0, 60] in the config, not 0..71.25.
    rows, error = _check(breast_cancer, [{**ok, "mean_radius": 65.0}], ranges)
    assert rows == [0] and "max 60; from expectations.columns" in error.message
    described = ranges.describe()
    assert described["features"]["worst_texture"] == {
        "range": "min 0, max 71.25",
        "source": "the reference of v3",
    }
    assert described["features"]["mean_radius"]["source"] == "expectations.columns"
    assert "18 feature(s) without configured bounds" in described["reference"]


def test_categories_seen_in_the_reference_bound_an_unbounded_categorical_feature() -> None:
    config, record = _fraud()
    nothing = config.expectations.model_copy(update={"columns": {}})
    config = config.model_copy(update={"expectations": nothing})
    reference = pd.DataFrame([record] * 5 + [{**record, "country": "DE"}] * 5)
    reference[config.target] = 0
    ranges = RangeCheck.for_version(config, 2, reference)
    assert _check(config, [record, {**record, "country": "DE"}], ranges) == ([], None)
    rows, error = _check(config, [record, {**record, "country": "ZZ"}], ranges)
    assert rows == [1] and error.field == "country" and "from the reference of v2" in error.message


def test_without_a_reference_or_with_off_only_the_config_counts(breast_cancer: PipelineConfig) -> None:
    ranges = RangeCheck.for_version(breast_cancer, 4, None)
    assert ranges.reference == "v4 has no readable reference: the config's bounds only"
    assert {b.source for b in ranges.bounds} == {"expectations.columns"}
    off = breast_cancer.model_copy(
        update={"serving": breast_cancer.serving.model_copy(update={"out_of_range": "off"})}
    )
    assert RangeCheck.for_version(off, 4, _reference(off)).bounds == []


def test_the_holder_loads_each_versions_range_with_the_model(
    mlops_home: Path, breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    """The range belongs to the version: ``load_version`` reads the version's reference with its model, and a
    version whose reference is gone serves with the config's bounds, saying so in ``GET /model``."""
    from mlops import registry
    from mlops.data.batches import ingest_batch
    from mlops.ml import training
    from mlops.ml.reference import REFERENCE_ARTIFACT
    from mlops.serving.holder import CHAMPION, load_version

    result = training.train_model(breast_cancer, ingest_batch(breast_cancer, str(bc_files[0])))
    version = registry.register_version(breast_cancer.name, result.model_uri, result.run_id, result.tags)
    loaded = load_version(breast_cancer, version, CHAMPION)
    assert loaded.ranges is not None
    seen = pd.read_csv(bc_files[0])["worst_texture"]
    bound = next(b for b in loaded.ranges.bounds if b.name == "worst_texture")
    assert bound.source == f"the reference of v{version}"
    assert bound.low is not None and bound.high is not None
    assert bound.low <= seen.min() and bound.high >= seen.max()  # the reference is a sample of these rows
    ok = {
        k: float(v) for k, v in pd.read_csv(bc_files[0]).drop(columns=[breast_cancer.target]).iloc[0].items()
    }
    rows, _ = _check(breast_cancer, [ok, {**ok, "worst_texture": bound.high * 10}], loaded.ranges)
    assert rows == [1]
    assert loaded.describe()["input_ranges"]["features"]["worst_texture"]["source"] == bound.source

    artifacts = Path(unquote(urlparse(registry.client().get_run(result.run_id).info.artifact_uri).path))
    (artifacts / REFERENCE_ARTIFACT).unlink()
    without = load_version(breast_cancer, version, CHAMPION)
    assert without.ranges is not None
    assert without.describe()["input_ranges"]["reference"] == (
        f"v{version} has no readable reference: the config's bounds only"
    )
    assert {b.source for b in without.ranges.bounds} == {"expectations.columns"}
