"""`mlops config infer`'s engine: proposals for datasets this project did not make, and their round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.config import check_config_deep
from mlops.data.infer import CATEGORY_LIMIT, infer_config, infer_file
from mlops.data.reading import read_batch
from mlops.data.validation import validate_frame
from mlops.errors import DataValidationError

pytestmark = pytest.mark.unit


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path, index=False)
    return path


def _round_trip(path: Path, target: str, task: str | None = None) -> tuple[dict, str]:
    """Infer from ``path``, complete and check the config, validate the same file with it: it must pass."""
    proposal = infer_file(path, target, task)
    text = proposal.to_yaml()
    config = proposal.complete()
    assert check_config_deep(config) == []
    report = validate_frame(read_batch(path, "auto", config), config)
    assert report.success, report.summary()
    return yaml.safe_load(text), text


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_diabetes_sex_codes_become_a_reviewed_categorical(
    diabetes: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    fragment, text = _round_trip(_write(diabetes, tmp_path / f"diabetes{suffix}"), "target")

    assert fragment["task"] == "regression" and fragment["target"] == "target"
    types = {f["name"]: f["type"] for f in fragment["features"]}
    assert types == {name: "numeric" for name in diabetes.columns if name not in ("target", "sex")} | {
        "sex": "categorical"
    }
    sex_line = next(line for line in text.splitlines() if "{name: sex" in line)
    assert "# review: whole numbers with 2 distinct values (1, 2), taken as codes" in sex_line
    rules = fragment["expectations"]["columns"]
    # Parquet holds 1.0/2.0 as floats, a CSV the text "1.0"/"2.0": both are the codes "1"/"2", natural ints.
    assert rules["sex"] == {"allowed": [1, 2]}
    assert rules["age"]["min"] <= diabetes["age"].min() and rules["age"]["max"] >= diabetes["age"].max()
    assert rules["target"]["min"] == 0  # widened below 0, but no target was negative
    assert fragment["expectations"]["row_count"] == {"min": 50}
    assert "inferred: the target holds 214 distinct numbers" in text
    assert f"at most {CATEGORY_LIMIT} distinct" in text  # the rule is stated


def test_wine_integer_classes_make_a_classification(tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    fragment, text = _round_trip(_write(frame, tmp_path / "wine.csv"), "target")

    assert fragment["task"] == "classification"
    assert "3 distinct whole numbers (classes); review" in text
    assert fragment["expectations"]["columns"]["target"] == {"allowed": [0, 1, 2]}
    assert all(f["type"] == "numeric" for f in fragment["features"])
    assert {f["name"] for f in fragment["features"]} == set(frame.columns) - {"target"}
    assert fragment["expectations"]["row_count"] == {"min": 50}


def test_breast_cancer_with_the_task_given(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    fragment, text = _round_trip(_write(frame, tmp_path / "bc.parquet"), "target", "classification")

    assert fragment["task"] == "classification" and "# given" in text
    assert len(fragment["features"]) == 30
    assert fragment["expectations"]["row_count"] == {"min": 56}  # a tenth of 569 rows


def test_iris_with_text_labels_ids_dates_booleans_and_nulls(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    rows = len(frame)
    frame["species"] = frame.pop("target").map({0: "setosa", 1: "versicolor", 2: "virginica"})
    frame.insert(0, "row_id", range(1000, 1000 + rows))
    frame["sample_code"] = [f"S-{i:04d}" for i in range(rows)]
    frame["measured_on"] = pd.date_range("2026-01-01", periods=rows, freq="h")
    frame["greenhouse"] = [i % 3 == 0 for i in range(rows)]
    frame["plot"] = [["north", "south", None][i % 3] for i in range(rows)]
    frame["empty"] = np.nan

    fragment, text = _round_trip(_write(frame, tmp_path / "iris.parquet"), "species")

    assert fragment["task"] == "classification"
    features = {f["name"]: f for f in fragment["features"]}
    assert set(features) == {
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
        "greenhouse",
        "plot",
    }
    for left_out, why in (
        ("row_id", "consecutive whole numbers"),
        ("sample_code", "an identifier"),
        ("measured_on", "a date or time"),
        ("empty", "no values in the sample"),
    ):
        line = next(line for line in text.splitlines() if f"{{name: {left_out}}}" in line)
        assert line.lstrip().startswith("# - ") and why in line, line
    rules = fragment["expectations"]["columns"]
    assert rules["greenhouse"] == {"allowed": [False, True]}
    assert features["plot"] == {"name": "plot", "type": "categorical", "nullable": True}
    assert rules["plot"] == {
        "allowed": ["north", "south"],
        "max_null_fraction": 0.67,
    }  # 1/3 null, plus as much
    assert rules["species"] == {"allowed": ["setosa", "versicolor", "virginica"]}


def test_the_proposed_rules_catch_a_batch_far_out_of_range(diabetes: pd.DataFrame, tmp_path: Path) -> None:
    proposal = infer_file(_write(diabetes, tmp_path / "d.parquet"), "target")
    config = proposal.complete()
    shifted = diabetes.assign(bmi=diabetes["bmi"] * 100, sex=diabetes["sex"] + 5)

    report = validate_frame(shifted, config)

    assert not report.success
    assert {f.column for f in report.failed} == {"bmi", "sex"}


def test_a_missing_target_names_the_columns(diabetes: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match=r"'y' is not in the sample; its columns: age, sex, bmi"):
        infer_config(diabetes, "y")


def test_regression_needs_a_numeric_target() -> None:
    frame = pd.DataFrame({"x": np.linspace(0, 3, 60), "label": ["a", "b"] * 30})
    with pytest.raises(DataValidationError, match="task regression needs a numeric target"):
        infer_config(frame, "label", "regression")
    assert infer_config(frame, "label").task == "classification"


def test_a_small_sample_proposes_its_own_size_as_the_minimum() -> None:
    frame = pd.DataFrame({"x": np.linspace(0, 1, 20), "y": np.linspace(5, 9, 20)})
    proposal = infer_config(frame, "y")
    assert proposal.min_rows == 20 and proposal.task == "regression"
    assert proposal.complete().expectations.row_count.min == 20
