"""Unit tests of the data validation core against a real GX ephemeral context, on tiny frames."""

from __future__ import annotations

import gc
import json
import re
import weakref
from pathlib import Path

import pandas as pd
import pytest
from markupsafe import escape

from mlops.config import PipelineConfig, parse_config
from mlops.data.validation import (
    Failure,
    ValidationReport,
    build_data_docs,
    build_suite,
    read_batch,
    validate_frame,
)
from mlops.errors import DataValidationError

ROWS = 20


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return parse_config(
        {
            "name": "tumours",
            "task": "classification",
            "data": {"source": "batches/{ds}.csv"},
            "target": "label",
            "features": [
                {"name": "mean_radius", "type": "numeric"},
                {"name": "texture", "type": "numeric", "nullable": True},
                {"name": "area", "type": "numeric"},
                {"name": "category", "type": "categorical"},
            ],
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "gate": {"primary_metric": "f1", "threshold": 0.5},
            "expectations": {
                "row_count": {"min": 5, "max": 1000},
                "columns": {
                    "mean_radius": {"min": 0, "max": 50},
                    "area": {"max_null_fraction": 0.1},
                    "category": {"allowed": ["a", "b", "c"]},
                },
            },
        }
    )


@pytest.fixture
def clean() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mean_radius": [float(i) for i in range(ROWS)],
            "texture": [None if i % 4 == 0 else 1.5 * i for i in range(ROWS)],
            "area": pd.array(range(100, 100 + ROWS), dtype="Int64"),
            "category": ["a", "b", "c", "a"] * (ROWS // 4),
            "label": [0, 1] * (ROWS // 2),
        }
    )


def only_failure(report: ValidationReport) -> Failure:
    assert not report.success
    assert len(report.failed) == 1, report.failed
    return report.failed[0]


# The suite --------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_build_suite_derives_expectations_from_schema_and_rules(config: PipelineConfig) -> None:
    suite = build_suite(config)

    assert suite.name == "tumours_batch"
    found = {(e.expectation_type, getattr(e, "column", None)) for e in suite.expectations}
    for column in ("mean_radius", "texture", "area", "category", "label"):
        assert ("expect_column_to_exist", column) in found
    for column in ("mean_radius", "texture", "area"):
        assert ("expect_column_values_to_be_in_type_list", column) in found
    assert ("expect_column_values_to_be_in_type_list", "category") not in found
    assert ("expect_column_values_to_be_in_type_list", "label") not in found  # classification target
    assert ("expect_column_values_to_not_be_null", "texture") not in found  # nullable
    assert ("expect_column_values_to_be_in_set", "label") not in found  # no label set invented
    assert ("expect_table_row_count_to_be_between", None) in found
    not_null = {
        e.column: e for e in suite.expectations if e.expectation_type == "expect_column_values_to_not_be_null"
    }
    assert set(not_null) == {"mean_radius", "area", "category", "label"}
    assert not_null["area"].mostly == pytest.approx(0.9)
    assert not_null["mean_radius"].mostly == 1
    for expectation in suite.expectations:
        assert expectation.meta["rule"] and expectation.meta["source"]
        assert expectation.description == expectation.meta["rule"]
    between = next(
        e for e in suite.expectations if e.expectation_type == "expect_column_values_to_be_between"
    )
    assert between.meta == {
        "rule": "mean_radius must be between 0 and 50",
        "source": "expectations.columns.mean_radius.min/max",
    }


@pytest.mark.unit
def test_regression_target_must_be_numeric(config: PipelineConfig) -> None:
    data = config.model_dump(mode="json") | {
        "task": "regression",
        "gate": {"primary_metric": "rmse", "threshold": 100.0},
    }
    data["model"] = {"estimator": "sklearn.linear_model.LinearRegression"}
    suite = build_suite(parse_config(data))

    type_checked = {e.column for e in suite.expectations if e.expectation_type.endswith("in_type_list")}
    assert "label" in type_checked


# Validation -------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_clean_frame_passes(config: PipelineConfig, clean: pd.DataFrame) -> None:
    report = validate_frame(clean, config)

    assert report.success, report.summary()
    assert report.failed == []
    assert report.rows == ROWS
    assert report.evaluated == len(build_suite(config).expectations)
    assert report.summary() == f"All {report.evaluated} expectations passed on {ROWS} rows of tumours."


@pytest.mark.unit
def test_nulls_in_non_nullable_column_fail_with_column_and_count(
    config: PipelineConfig, clean: pd.DataFrame
) -> None:
    clean.loc[[2, 5, 7], "mean_radius"] = None

    failure = only_failure(validate_frame(clean, config))

    assert failure.expectation == "expect_column_values_to_not_be_null"
    assert failure.column == "mean_radius"
    assert failure.unexpected_count == 3
    assert failure.sample_rows == [2, 5, 7]
    assert failure.rule == "feature mean_radius must not be null (nullable: false)"


@pytest.mark.unit
def test_missing_column_fails_once_and_clearly(config: PipelineConfig, clean: pd.DataFrame) -> None:
    report = validate_frame(clean.drop(columns=["category"]), config)

    failure = only_failure(report)
    assert (failure.expectation, failure.column, failure.detail) == (
        "expect_column_to_exist",
        "category",
        "column is missing",
    )
    assert report.evaluated == len(build_suite(config).expectations)  # the other checks ran
    assert report.summary().count("category") == 1
    assert "category: column is missing" in report.summary()
    json.loads(report.to_json())


@pytest.mark.unit
def test_strings_in_numeric_column_fail_the_type_check(config: PipelineConfig, clean: pd.DataFrame) -> None:
    clean["mean_radius"] = clean["mean_radius"].astype(str)
    clean.loc[3, "mean_radius"] = "abc"

    failure = only_failure(validate_frame(clean, config))

    assert failure.expectation == "expect_column_values_to_be_in_type_list"
    assert failure.column == "mean_radius"
    assert failure.sample == ["abc"]
    assert failure.detail == "dtype object: 1 value is not a number, e.g. 'abc'"


@pytest.mark.unit
def test_out_of_range_values_fail_with_counts(config: PipelineConfig, clean: pd.DataFrame) -> None:
    clean.loc[[1, 4], "mean_radius"] = 51.0
    clean.loc[6, "mean_radius"] = -0.5

    report = validate_frame(clean, config)

    failure = only_failure(report)
    assert failure.expectation == "expect_column_values_to_be_between"
    assert failure.unexpected_count == 3
    assert failure.unexpected_percent == pytest.approx(15.0)
    assert failure.sample == [51.0, -0.5]
    assert failure.rule == "mean_radius must be between 0 and 50"
    assert "mean_radius: 3 rows outside [0, 50]" in report.summary()


@pytest.mark.unit
def test_value_outside_allowed_set_fails(config: PipelineConfig, clean: pd.DataFrame) -> None:
    clean.loc[[0, 9], "category"] = "z"

    failure = only_failure(validate_frame(clean, config))

    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert (failure.column, failure.unexpected_count, failure.sample) == ("category", 2, ["z"])


@pytest.mark.unit
def test_too_few_rows_fail_the_row_count(config: PipelineConfig, clean: pd.DataFrame) -> None:
    failure = only_failure(validate_frame(clean.head(3), config))

    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert failure.column is None
    assert failure.detail == "row count is 3, expected between 5 and 1000"


@pytest.mark.unit
@pytest.mark.parametrize(("nulls", "passes"), [(0, True), (2, True), (3, False)])
def test_max_null_fraction_tolerates_up_to_the_limit(
    config: PipelineConfig, clean: pd.DataFrame, nulls: int, passes: bool
) -> None:
    clean.loc[: nulls - 1, "area"] = pd.NA  # 2 of 20 rows is exactly the 10% allowed

    report = validate_frame(clean, config)

    assert report.success is passes, report.summary()
    if not passes:
        failure = only_failure(report)
        assert (failure.column, failure.unexpected_count) == ("area", 3)
        assert "at most 10% allowed" in failure.detail


@pytest.mark.unit
def test_validated_frame_is_not_kept_alive(config: PipelineConfig, clean: pd.DataFrame) -> None:
    frame = clean.copy()  # the fixture's frame stays referenced by pytest
    validate_frame(frame, config)
    ref = weakref.ref(frame)
    del frame
    gc.collect()

    assert ref() is None  # the shared GX context released its batch


# Reading ----------------------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("content", "said"),
    [(b"", "empty (0 bytes)"), (b"\n\n", "no header and no rows"), (b"mean_radius,label\n", "no rows")],
)
def test_read_batch_rejects_empty_files(tmp_path: Path, content: bytes, said: str) -> None:
    path = tmp_path / "2026-01-01.csv"
    path.write_bytes(content)

    with pytest.raises(DataValidationError, match=re.escape(said)) as caught:
        read_batch(path)

    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        # Where, in the parser's numbers; never its words about the content.
        ("broken.csv", "a,b\n1,2\n3,4,5,6\n", "as CSV: expected 2 fields in line 3, saw 4 (ParserError)"),
        ("broken.parquet", "this is not parquet at all", "as PARQUET: no Parquet magic bytes"),
    ],
)
@pytest.mark.unit
def test_read_batch_rejects_unparseable_files(tmp_path: Path, name: str, content: str, said: str) -> None:
    path = tmp_path / name
    path.write_text(content)

    with pytest.raises(DataValidationError, match="cannot parse the batch file") as caught:
        read_batch(path)

    assert str(path) in str(caught.value)
    assert said in str(caught.value)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        # /proc/self/environ read as a CSV: one NUL-separated line, a header and no rows.
        (
            "environ.csv",
            b"SHELL=/bin/bash\x00AWS_SECRET_ACCESS_KEY=hunter2\x00",
            "no rows (a header of 1 columns)",
        ),
        (
            "lines.csv",
            b"user,label\nhunter2,1\nroot:x:0:0:root,/root,/bin/bash,2\n",
            "expected 2 fields in line 3",
        ),
        ("quote.csv", b'user,label\n"hunter2,1\n', "a quoted field opened in row"),
        ("latin1.csv", b"user,label\nhunter2\xff\xfe,1\n", "not utf-8 text (byte 18)"),
    ],
)
def test_a_parse_error_quotes_nothing_of_the_file(
    tmp_path: Path, name: str, content: bytes, said: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(DataValidationError) as caught:
        read_batch(path, "csv", config=None)

    message = str(caught.value)
    assert said in message and str(path) in message
    for secret in ("SHELL", "hunter2", "root:x", "bash", "0xff"):
        assert secret not in message, message


@pytest.mark.unit
@pytest.mark.parametrize(("name", "fmt"), [("b.parquet", "auto"), ("b.bin", "auto"), ("b.data", "parquet")])
def test_parquet_round_trip(
    config: PipelineConfig, clean: pd.DataFrame, tmp_path: Path, name: str, fmt: str
) -> None:
    path = tmp_path / name
    clean.to_parquet(path, index=False)

    frame = read_batch(path, fmt)

    pd.testing.assert_frame_equal(frame, clean)
    assert validate_frame(frame, config).success


@pytest.mark.unit
def test_csv_round_trip(config: PipelineConfig, clean: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    clean.to_csv(path, index=False)

    frame = read_batch(str(path))

    assert list(frame.columns) == list(clean.columns)
    assert len(frame) == ROWS
    assert validate_frame(frame, config).success


# Renderings -------------------------------------------------------------------------------------------------
@pytest.fixture
def failed_report(config: PipelineConfig, clean: pd.DataFrame) -> ValidationReport:
    clean.loc[[1, 4], "mean_radius"] = 99.0
    clean.loc[0, "label"] = None
    return validate_frame(clean.drop(columns=["category"]), config)


@pytest.mark.unit
def test_summary_is_one_short_paragraph_naming_columns(failed_report: ValidationReport) -> None:
    summary = failed_report.summary()

    assert "\n" not in summary
    assert len(summary) < 300
    assert summary.startswith(f"{failed_report.result['statistics']['unsuccessful_expectations']} of ")
    assert f"failed on {ROWS} rows of tumours: " in summary
    for part in ("mean_radius: 2 rows outside [0, 50]", "category: column is missing", "label: 1 null row"):
        assert part in summary


@pytest.mark.unit
def test_to_html_is_self_contained(failed_report: ValidationReport) -> None:
    page = failed_report.to_html()

    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    assert not re.search(r"<script|<link|<img|@import|https?://", page, re.IGNORECASE)
    assert "FAILED" in page and "tumours" in page
    for entry in failed_report.result["results"]:  # every expectation has its row
        assert escape(entry["expectation_config"]["meta"]["rule"]) in page
    assert page.count(">not run<") == 2  # the not-null and allowed-values checks of the missing column


@pytest.mark.unit
def test_to_json_parses_and_round_trips(failed_report: ValidationReport) -> None:
    text = failed_report.to_json()

    data = json.loads(text)
    assert data["summary"] == failed_report.summary()
    assert data["failed"][0]["rule"]
    assert ValidationReport.from_json(text) == failed_report


@pytest.mark.unit
def test_for_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.touch()
    with pytest.raises(DataValidationError) as caught:
        read_batch(path)

    report = ValidationReport.for_unreadable("tumours", str(caught.value))

    failure = only_failure(report)
    assert failure.expectation == "file_is_readable"
    assert (
        report.summary()
        == f"The batch of tumours could not be read: {path}: the batch file is empty (0 bytes)"
    )
    assert ValidationReport.from_json(report.to_json()) == report
    assert "file_is_readable" in report.to_html()


@pytest.mark.unit
def test_build_data_docs(failed_report: ValidationReport, tmp_path: Path) -> None:
    index = build_data_docs(failed_report, tmp_path / "docs")

    assert index == (tmp_path / "docs" / "index.html").resolve()
    assert index.is_file()
    pages = list((tmp_path / "docs" / "validations" / "tumours_batch").rglob("*.html"))
    assert len(pages) == 1
    with pytest.raises(ValueError, match="no Great Expectations result"):
        build_data_docs(ValidationReport.for_unreadable("tumours", "empty"), tmp_path / "none")
