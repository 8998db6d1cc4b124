"""The validation report's words for a batch without its target: it names the target and the columns found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops.config import PipelineConfig

pytestmark = pytest.mark.unit


def _batch(path: Path, *, drop: tuple[str, ...] = ()) -> Any:
    """A valid breast_cancer batch (80 rows) without the ``drop`` columns."""
    import pandas as pd

    return pd.read_csv(path).drop(columns=list(drop))


def test_a_missing_target_names_itself_and_the_columns_the_batch_has(
    breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    from mlops.data.validation import validate_frame

    report = validate_frame(_batch(bc_files[0], drop=(breast_cancer.target,)), breast_cancer)

    assert not report.success
    (missing,) = [f for f in report.failed if f.column == breast_cancer.target]
    assert missing.detail.startswith("the target column 'diagnosis' is missing; the batch has columns: ")
    assert "mean_radius, mean_texture, mean_perimeter" in missing.detail
    assert missing.detail.endswith("and 10 more")  # 30 columns: the first 20 are named
    summary = report.summary()
    # First in the summary, and not as "diagnosis: column is missing".
    assert summary.split(": ", 1)[1].startswith("the target column 'diagnosis' is missing; the batch has")
    assert "diagnosis: column is missing" not in summary
    assert "diagnosis" in report.to_html()


def test_a_missing_feature_reads_as_before(breast_cancer: PipelineConfig, bc_files: list[Path]) -> None:
    from mlops.data.validation import validate_frame

    report = validate_frame(_batch(bc_files[0], drop=("mean_area",)), breast_cancer)

    assert [(f.column, f.detail) for f in report.failed] == [("mean_area", "column is missing")]
    assert "mean_area: column is missing" in report.summary()


def test_a_small_batch_without_its_target_lists_every_column(
    breast_cancer: PipelineConfig, bc_files: list[Path]
) -> None:
    from mlops.data.report import ValidationReport

    frame = _batch(bc_files[0])[["mean_radius", "mean_texture", "mean_perimeter"]]
    result = {
        "success": False,
        "statistics": {"evaluated_expectations": 1, "unsuccessful_expectations": 1},
        "results": [
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_to_exist",
                    "kwargs": {"column": "diagnosis"},
                    "meta": {"rule": "target diagnosis must exist", "source": "target"},
                },
                "result": {},
            }
        ],
    }
    report = ValidationReport.from_result(result, pipeline=breast_cancer.name, df=frame)

    expected = (
        "the target column 'diagnosis' is missing; "
        "the batch has columns: mean_radius, mean_texture, mean_perimeter"
    )
    assert report.failed[0].detail == expected
    assert report.summary() == f"1 of 1 expectations failed on 80 rows of breast_cancer: {expected}."
