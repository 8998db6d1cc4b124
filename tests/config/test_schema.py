"""The pipeline config: the examples load, and every broken file says which file, which field and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.config import PipelineConfig, check_config_deep, load_all, load_config, parse_config
from mlops.errors import ConfigError

PIPELINES = Path(__file__).resolve().parents[2] / "include" / "pipelines"

EXAMPLES = sorted(PIPELINES.glob("*.yaml"))


def _base() -> dict[str, Any]:
    """A small valid config document (named ``tiny``)."""
    return {
        "name": "tiny",
        "task": "classification",
        "data": {"source": "landing/tiny/{ds}.csv"},
        "target": "label",
        "features": [
            {"name": "size", "type": "numeric"},
            {"name": "colour", "type": "categorical"},
        ],
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5}},
        "gate": {"primary_metric": "roc_auc", "threshold": 0.8, "secondary": [{"metric": "recall"}]},
        "expectations": {"columns": {"size": {"min": 0, "max": 10}, "colour": {"allowed": ["red", "blue"]}}},
        "alerts": [{"channel": "email", "conn_id": "smtp", "to": ["a@example.com"]}],
        "schedule": "0 3 * * *",
    }


def _write(folder: Path, document: Any, name: str = "tiny") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


def _problems(folder: Path, document: Any, name: str = "tiny") -> tuple[str, ConfigError]:
    path = _write(folder, document, name)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    return "\n".join(caught.value.problems), caught.value


# The examples -------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_there_are_example_configs() -> None:
    assert {p.stem for p in EXAMPLES} >= {"breast_cancer", "demand_forecast", "fraud_detection"}


@pytest.mark.unit
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads_and_passes_deep_check(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem
    assert check_config_deep(config) == []
    assert set(config.feature_names).isdisjoint({config.target})


@pytest.mark.unit
def test_a_valid_document_loads(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, _base()))
    assert config.numeric_features == ["size"]
    assert config.categorical_features == ["colour"]
    assert config.training_dag_id == "tiny_training"
    assert config.split.holdout_fraction == 0.2  # defaults filled in


# Schema errors: file, field and what is allowed ----------------------------------------------------------------
def _with(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(_base())
    change(document)
    return document


@pytest.mark.unit
def test_wrong_task_names_the_field_and_the_choices(tmp_path: Path) -> None:
    problems, _ = _problems(tmp_path, _with(lambda d: d.update(task="clustering")))
    assert "field 'task'" in problems
    assert "'classification' or 'regression'" in problems
    assert "clustering" in problems


@pytest.mark.unit
def test_unknown_field_is_named(tmp_path: Path) -> None:
    problems, _ = _problems(tmp_path, _with(lambda d: d["model"].update(parms={"C": 1})))
    assert "field 'model.parms': unknown field" in problems


@pytest.mark.unit
def test_missing_required_field_is_named(tmp_path: Path) -> None:
    problems, _ = _problems(tmp_path, _with(lambda d: d.pop("target")))
    assert "field 'target': required field is missing" in problems


@pytest.mark.unit
def test_estimator_must_be_an_import_path(tmp_path: Path) -> None:
    problems, _ = _problems(tmp_path, _with(lambda d: d["model"].update(estimator="LogisticRegression")))
    assert "field 'model.estimator'" in problems
    assert "sklearn.linear_model.LogisticRegression" in problems  # the example of what is allowed


@pytest.mark.unit
@pytest.mark.parametrize("schedule", ["every day", "0 3 * *", "@fortnightly"])
def test_bad_schedule_lists_what_is_allowed(tmp_path: Path, schedule: str) -> None:
    problems, _ = _problems(tmp_path, _with(lambda d: d.update(schedule=schedule)))
    assert "field 'schedule'" in problems
    assert "@daily" in problems and "five-field cron" in problems


@pytest.mark.unit
@pytest.mark.parametrize("schedule", [None, "@daily", "*/15 2-4 * * MON-FRI"])
def test_good_schedules(tmp_path: Path, schedule: str | None) -> None:
    assert load_config(_write(tmp_path, _with(lambda d: d.update(schedule=schedule)))).schedule == schedule


@pytest.mark.unit
def test_metric_must_suit_the_task(tmp_path: Path) -> None:
    problems, _ = _problems(tmp_path, _with(lambda d: d["gate"]["secondary"].append({"metric": "rmse"})))
    assert "field 'gate.secondary.1.metric': 'rmse' is not a classification metric" in problems
    assert "roc_auc" in problems  # the allowed ones are listed


@pytest.mark.unit
def test_regression_metric_on_a_regression_task_is_fine(tmp_path: Path) -> None:
    def regression(d: dict[str, Any]) -> None:
        d.update(task="regression", gate={"primary_metric": "rmse", "threshold": 5})

    assert load_config(_write(tmp_path, _with(regression))).gate.primary_metric == "rmse"
    problems, _ = _problems(tmp_path, _with(lambda d: (regression(d), d["gate"].update(primary_metric="f1"))))
    assert "field 'gate.primary_metric': 'f1' is not a regression metric; allowed: rmse" in problems


@pytest.mark.unit
def test_expectations_on_an_undeclared_column(tmp_path: Path) -> None:
    problems, _ = _problems(tmp_path, _with(lambda d: d["expectations"]["columns"].update(weight={"min": 0})))
    assert "field 'expectations.columns.weight': not a declared column" in problems
    assert "'size'" in problems and "'label'" in problems  # the declared ones are listed


@pytest.mark.unit
def test_min_greater_than_max(tmp_path: Path) -> None:
    problems, _ = _problems(
        tmp_path, _with(lambda d: d["expectations"]["columns"].update(size={"min": 5, "max": 1}))
    )
    assert "field 'expectations.columns.size'" in problems
    assert "min (5.0) is greater than max (1.0)" in problems


@pytest.mark.unit
def test_target_listed_as_a_feature(tmp_path: Path) -> None:
    problems, _ = _problems(
        tmp_path, _with(lambda d: d["features"].append({"name": "label", "type": "numeric"}))
    )
    assert "field 'target': 'label' is also listed as a feature" in problems


@pytest.mark.unit
def test_duplicate_features(tmp_path: Path) -> None:
    problems, _ = _problems(
        tmp_path, _with(lambda d: d["features"].append({"name": "size", "type": "numeric"}))
    )
    assert "field 'features': duplicate names ['size']" in problems


@pytest.mark.unit
def test_email_route_needs_recipients(tmp_path: Path) -> None:
    problems, _ = _problems(tmp_path, _with(lambda d: d["alerts"][0].pop("to")))
    assert "field 'alerts.0': an email route needs at least one address in 'to'" in problems


@pytest.mark.unit
def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    def broken(d: dict[str, Any]) -> None:
        d["features"].append({"name": "label", "type": "numeric"})
        d["gate"]["primary_metric"] = "mae"

    _, error = _problems(tmp_path, _with(broken))
    assert len(error.problems) == 2
    assert "2 problem(s)" in str(error)


@pytest.mark.unit
def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    text = "name: tiny\ntask: classification\nfeatures: [a, b\ntarget: label\n"
    problems, _ = _problems(tmp_path, text)
    assert "not valid YAML" in problems
    assert "line 4" in problems


@pytest.mark.unit
def test_name_must_match_the_file_name(tmp_path: Path) -> None:
    problems, _ = _problems(tmp_path, _base(), name="other_name")
    assert "field 'name': 'tiny' must match the file name 'other_name.yaml'" in problems


@pytest.mark.unit
@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""], ids=["list", "scalar", "empty"])
def test_document_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    problems, _ = _problems(tmp_path, text)
    assert "must hold a mapping of fields" in problems


@pytest.mark.unit
def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file") as caught:
        load_config(tmp_path / "absent.yaml")
    assert caught.value.path == str(tmp_path / "absent.yaml")


# load_all -----------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_load_all_splits_good_and_bad_files(tmp_path: Path) -> None:
    _write(tmp_path, _base())
    second = _with(lambda d: d.update(name="second"))
    _write(tmp_path, second, name="second")
    bad = _write(tmp_path, _with(lambda d: d.update(name="broken", task="clustering")), name="broken")
    (tmp_path / "notes.txt").write_text("not a config")

    configs, errors = load_all(tmp_path)

    assert sorted(configs) == ["second", "tiny"]
    assert list(errors) == [str(bad)]
    assert "field 'task'" in str(errors[str(bad)])


@pytest.mark.unit
def test_load_all_of_the_examples_has_no_errors() -> None:
    configs, errors = load_all(PIPELINES)
    assert errors == {}
    assert set(configs) == {p.stem for p in EXAMPLES}


# check_config_deep --------------------------------------------------------------------------------------------
def _deep(**model: Any) -> list[str]:
    return check_config_deep(parse_config(_with(lambda d: d["model"].update(model))))


@pytest.mark.unit
def test_deep_check_passes_a_good_estimator() -> None:
    assert _deep(estimator="sklearn.ensemble.RandomForestClassifier", params={"n_estimators": 5}) == []


@pytest.mark.unit
@pytest.mark.parametrize("estimator", ["sklearn.linear_model.NoSuchModel", "sklearn.no_such_module.Model"])
def test_deep_check_estimator_that_does_not_import(estimator: str) -> None:
    [problem] = _deep(estimator=estimator, params={})
    assert problem.startswith("field 'model.estimator': cannot import")
    assert estimator in problem


@pytest.mark.unit
def test_deep_check_regressor_for_a_classification_task() -> None:
    [problem] = _deep(estimator="sklearn.linear_model.Ridge", params={})
    assert "field 'model.estimator'" in problem
    assert "not a classifier (task: classification)" in problem


@pytest.mark.unit
def test_deep_check_classifier_for_a_regression_task() -> None:
    def regression(d: dict[str, Any]) -> None:
        d.update(task="regression", gate={"primary_metric": "rmse", "threshold": 5})

    config = parse_config(_with(regression))
    [problem] = check_config_deep(config)
    assert "not a regressor (task: regression)" in problem


@pytest.mark.unit
def test_deep_check_unknown_param_lists_the_valid_ones() -> None:
    [problem] = _deep(params={"C": 1.0, "n_trees": 10})
    assert problem.startswith("field 'model.params'")
    assert "n_trees" in problem
    assert "max_iter" in problem  # a valid parameter of LogisticRegression


@pytest.mark.unit
def test_deep_check_class_that_is_not_an_estimator() -> None:
    [problem] = _deep(estimator="sklearn.utils.Bunch", params={})
    assert "field 'model.estimator'" in problem
    assert "not a scikit-learn estimator" in problem


# config_hash --------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_config_hash_is_stable(tmp_path: Path) -> None:
    first = parse_config(_base())
    again = load_config(_write(tmp_path, _base()))
    assert first.config_hash == again.config_hash
    assert len(first.config_hash) == 64


@pytest.mark.unit
@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["model"]["params"].update(C=0.6),
        lambda d: d["gate"].update(threshold=0.81),
        lambda d: d["features"][0].update(nullable=True),
        lambda d: d.update(description="changed"),
    ],
    ids=["param", "threshold", "feature", "description"],
)
def test_config_hash_changes_when_a_field_changes(change: Any) -> None:
    assert parse_config(_with(change)).config_hash != parse_config(_base()).config_hash


@pytest.mark.unit
def test_parsed_config_is_frozen() -> None:
    config: PipelineConfig = parse_config(_base())
    with pytest.raises(Exception, match="frozen"):
        config.name = "other"  # type: ignore[misc]


# Defaults of the minimal config's protection -------------------------------------------------------------------
@pytest.mark.unit
def test_a_minimal_config_has_a_row_minimum_and_a_baseline_in_warn_mode() -> None:
    document = _base()
    del document["expectations"]
    config = parse_config(document)
    assert config.expectations.row_count.min == 50
    assert config.expectations.baseline == "warn"
    assert config.expectations.columns == {}


@pytest.mark.unit
def test_the_baseline_mode_is_checked(tmp_path: Path) -> None:
    def mode(value: str) -> Any:
        return lambda document: document["expectations"].update(baseline=value)

    problems, _ = _problems(tmp_path, _with(mode("strict")))
    assert "expectations.baseline" in problems and "'warn', 'fail' or 'off'" in problems
    for value in ("warn", "fail", "off"):
        assert parse_config(_with(mode(value))).expectations.baseline == value
