"""Unit tests of the seeded data generators, the corruptions and the example pipeline configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.config import check_config_deep, load_config
from mlops_datagen import (
    CORRUPTIONS,
    PIPELINES,
    TARGETS,
    corrupt_batch,
    generate_batches,
    generate_frames,
)
from mlops_datagen.__main__ import main
from mlops_datagen.corruption import default_column

PIPELINES_DIR = Path(__file__).resolve().parents[2] / "include" / "pipelines"
#: Small batches keep the tests fast; breast_cancer uses its real 569 rows.
SMALL_ROWS = {"breast_cancer": None, "fraud_detection": 600, "demand_forecast": 600}


def _frames(pipeline: str, **kwargs: object) -> list[pd.DataFrame]:
    kwargs.setdefault("rows", SMALL_ROWS[pipeline])
    return [frame for _, frame in generate_frames(pipeline, **kwargs)]  # type: ignore[arg-type]


# Batches ----------------------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_same_seed_writes_identical_files(pipeline: str, tmp_path: Path) -> None:
    first = generate_batches(pipeline, tmp_path / "a", batches=2, rows=SMALL_ROWS[pipeline], seed=3)
    second = generate_batches(pipeline, tmp_path / "b", batches=2, rows=SMALL_ROWS[pipeline], seed=3)
    other = generate_batches(pipeline, tmp_path / "c", batches=2, rows=SMALL_ROWS[pipeline], seed=4)

    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[0].read_bytes() != other[0].read_bytes()


@pytest.mark.unit
def test_batches_are_named_by_consecutive_dates(tmp_path: Path) -> None:
    paths = generate_batches("fraud_detection", tmp_path, batches=3, rows=50, start_date="2026-01-30")

    assert [p.name for p in paths] == ["2026-01-30.csv", "2026-01-31.csv", "2026-02-01.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # no partial files left


@pytest.mark.unit
def test_parquet_batches_read_back_equal(tmp_path: Path) -> None:
    (path,) = generate_batches("demand_forecast", tmp_path, batches=1, rows=100, fmt="parquet")

    assert path.name == "2026-01-01.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(path), _frames("demand_forecast", batches=1, rows=100)[0])


@pytest.mark.unit
def test_a_batch_does_not_depend_on_how_many_are_made() -> None:
    three = _frames("fraud_detection", batches=3, seed=5)
    one = _frames("fraud_detection", batches=1, seed=5)

    pd.testing.assert_frame_equal(three[0], one[0])


@pytest.mark.unit
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_another_start_date_is_new_data_not_yesterdays_batch_renamed(pipeline: str, tmp_path: Path) -> None:
    # Issue 16: `mlops data generate breast_cancer --seed 7 --start-date 2026-01-02` wrote the bytes of the
    # default run's first batch again (7 is the default seed, and the date did not reach the data).
    rows = [] if SMALL_ROWS[pipeline] is None else ["--rows", str(SMALL_ROWS[pipeline])]
    assert main([pipeline, "--out", str(tmp_path / "default"), "--batches", "1", *rows]) == 0
    assert (
        main([pipeline, "--out", str(tmp_path / "next"), "--seed", "7", "--start-date", "2026-01-02", *rows])
        == 0
    )
    again = ["--seed", "7", "--start-date", "2026-01-02"]
    assert main([pipeline, "--out", str(tmp_path / "again"), *again, *rows]) == 0

    yesterday = (tmp_path / "default" / "2026-01-01.csv").read_bytes()
    written = {p.name: p.read_bytes() for p in sorted((tmp_path / "next").iterdir())}
    assert list(written) == ["2026-01-02.csv", "2026-01-03.csv", "2026-01-04.csv"]
    assert all(data != yesterday for data in written.values())
    assert len(set(written.values())) == 3
    assert written == {p.name: p.read_bytes() for p in sorted((tmp_path / "again").iterdir())}


@pytest.mark.unit
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_batch_is_a_function_of_seed_and_date(pipeline: str) -> None:
    rows = SMALL_ROWS[pipeline] or 100
    three = _frames(pipeline, batches=3, rows=rows, seed=5)
    third_alone = _frames(pipeline, batches=1, rows=rows, seed=5, start_date="2026-01-03")
    other_seed = _frames(pipeline, batches=3, rows=rows, seed=6)

    pd.testing.assert_frame_equal(three[2], third_alone[0])  # the same date, whatever the first one
    for mine, theirs in zip(three, other_seed, strict=True):
        assert not mine.equals(theirs)
    assert not three[0].equals(three[1])


@pytest.mark.unit
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_dates_before_the_default_calendar_have_their_own_data(pipeline: str) -> None:
    rows = SMALL_ROWS[pipeline] or 100
    before = _frames(pipeline, batches=2, rows=rows, start_date="2025-12-30")
    default = _frames(pipeline, batches=1, rows=rows)[0]

    assert not before[0].equals(before[1])
    assert not any(frame.equals(default) for frame in before)
    pd.testing.assert_frame_equal(
        before[1], _frames(pipeline, batches=1, rows=rows, start_date="2025-12-31")[0]
    )


@pytest.mark.unit
def test_breast_cancer_default_rows_split_the_start_dates_shuffle() -> None:
    day_one = _frames("breast_cancer", batches=3)
    day_two = _frames("breast_cancer", batches=3, start_date="2026-01-02")

    for batches in (day_one, day_two):
        whole = pd.concat(batches, ignore_index=True)
        assert [len(b) for b in batches] == [190, 190, 189] and not whole.duplicated().any()
    assert not day_one[0].equals(day_two[0])
    assert not day_two[0].equals(day_one[1])  # 2026-01-02 is new data, not the default run's second part


@pytest.mark.unit
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pipeline": "churn"}, "unknown pipeline"),
        ({"batches": 0}, "batches"),
        ({"start_date": "01/01/2026"}, "start_date"),
        ({"fmt": "xlsx"}, "format"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, object], message: str, tmp_path: Path) -> None:
    kwargs: dict[str, object] = {"pipeline": "fraud_detection", "out_dir": tmp_path, "rows": 10} | arguments

    with pytest.raises(ValueError, match=message):
        generate_batches(**kwargs)  # type: ignore[arg-type]


@pytest.mark.unit
def test_breast_cancer_splits_the_real_data_with_malignant_as_one() -> None:
    batches = _frames("breast_cancer", batches=3)
    whole = pd.concat(batches, ignore_index=True)

    assert [len(b) for b in batches] == [190, 190, 189]
    assert not whole.duplicated().any()
    assert whole["diagnosis"].value_counts().to_dict() == {0: 357, 1: 212}  # 212 malignant in the data set
    assert {"mean_radius", "worst_concave_points", "fractal_dimension_error"} <= set(whole.columns)
    # Malignant tumours are larger: the label means what the docs say.
    assert whole.groupby("diagnosis")["mean_radius"].mean().idxmax() == 1


@pytest.mark.unit
def test_fraud_is_rare_but_present() -> None:
    whole = pd.concat(_frames("fraud_detection", batches=2, rows=4000), ignore_index=True)

    assert 0.015 < whole["is_fraud"].mean() < 0.04
    assert set(whole["card_present"]) == {"yes", "no"}
    assert (whole["amount"] > 0).all()
    assert whole["distance_from_home_km"].isna().mean() < 0.05


@pytest.mark.unit
def test_demand_is_a_non_negative_count_that_follows_price_and_promotion() -> None:
    frame = _frames("demand_forecast", batches=1, rows=3000)[0]

    assert frame["units_sold"].dtype == np.int64 and (frame["units_sold"] >= 0).all()
    assert set(frame["day_of_week"]) == set(range(7))
    by_promotion = frame.groupby("promotion")["units_sold"].mean()
    assert by_promotion["yes"] > 1.3 * by_promotion["no"]


# Drift ------------------------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("pipeline", "column"),
    [("breast_cancer", "mean_radius"), ("fraud_detection", "amount"), ("demand_forecast", "temperature_c")],
)
def test_feature_drift_shifts_the_mean_from_the_drifted_batch_on(pipeline: str, column: str) -> None:
    plain = _frames(pipeline, batches=2)
    drifted = _frames(pipeline, batches=2, feature_drift=1.0, drift_from=1)

    pd.testing.assert_frame_equal(plain[0], drifted[0])
    spread = plain[1][column].std()
    assert drifted[1][column].mean() - plain[1][column].mean() > 0.5 * spread


@pytest.mark.unit
def test_concept_drift_changes_who_commits_fraud_not_the_transactions() -> None:
    plain = _frames("fraud_detection", batches=1, rows=4000)[0]
    drifted = _frames("fraud_detection", batches=1, rows=4000, concept_drift=1.0)[0]

    features = [c for c in plain.columns if c != "is_fraud"]
    pd.testing.assert_frame_equal(plain[features], drifted[features])
    rate = {
        name: frame.groupby("card_present")["is_fraud"].mean()
        for name, frame in [("plain", plain), ("drifted", drifted)]
    }
    assert rate["plain"]["no"] > 3 * rate["plain"]["yes"]  # card-not-present fraud before
    assert rate["drifted"]["yes"] > 3 * rate["drifted"]["no"]  # skimming at the till after


@pytest.mark.unit
def test_breast_cancer_concept_drift_flips_labels_only_in_its_region() -> None:
    plain = pd.concat(_frames("breast_cancer", batches=2), ignore_index=True)
    drifted = pd.concat(_frames("breast_cancer", batches=2, concept_drift=1.0), ignore_index=True)

    flipped = plain["diagnosis"] != drifted["diagnosis"]
    region = plain["mean_texture"] > plain["mean_texture"].median()
    assert flipped.sum() > 200
    assert not (flipped & ~region).any()
    assert (flipped == region).mean() > 0.95


@pytest.mark.unit
def test_demand_concept_drift_changes_demand_for_the_same_features() -> None:
    plain = _frames("demand_forecast", batches=1, rows=3000)[0]
    drifted = _frames("demand_forecast", batches=1, rows=3000, concept_drift=1.0)[0]

    features = [c for c in plain.columns if c != "units_sold"]
    pd.testing.assert_frame_equal(plain[features], drifted[features])
    # A competitor opens next to store S05: it loses demand that the other stores keep.
    change = drifted.groupby("store")["units_sold"].mean() / plain.groupby("store")["units_sold"].mean()
    assert change["S05"] < 0.75 * change.drop("S05").min()


# Corruptions ------------------------------------------------------------------------------------------------
@pytest.fixture
def good_batch(tmp_path: Path) -> Path:
    return generate_batches("fraud_detection", tmp_path / "landing", batches=1, rows=200)[0]


@pytest.mark.unit
def test_every_corruption_kind_is_listed() -> None:
    assert CORRUPTIONS == ("nulls", "missing_column", "wrong_type", "out_of_range", "empty", "unparseable")


@pytest.mark.unit
def test_nulls_empty_about_a_third_of_a_numeric_feature(good_batch: Path, tmp_path: Path) -> None:
    broken = pd.read_csv(corrupt_batch(good_batch, tmp_path / "x.csv", "nulls"))

    assert 0.25 < broken["amount"].isna().mean() < 0.35
    assert broken.drop(columns=["amount", "distance_from_home_km"]).notna().all().all()


@pytest.mark.unit
def test_missing_column_drops_only_that_column(good_batch: Path, tmp_path: Path) -> None:
    broken = pd.read_csv(corrupt_batch(good_batch, tmp_path / "x.csv", "missing_column", column="country"))

    assert list(broken.columns) == [c for c in pd.read_csv(good_batch).columns if c != "country"]


@pytest.mark.unit
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_wrong_type_makes_a_numeric_column_text(suffix: str, good_batch: Path, tmp_path: Path) -> None:
    dest = corrupt_batch(good_batch, tmp_path / f"x{suffix}", "wrong_type")
    broken = pd.read_parquet(dest) if suffix == ".parquet" else pd.read_csv(dest)

    assert not pd.api.types.is_numeric_dtype(broken["amount"])
    assert broken["amount"].astype(str).str.startswith("n/a-").any()
    with pytest.raises(ValueError):
        pd.to_numeric(broken["amount"])


@pytest.mark.unit
def test_out_of_range_goes_far_beyond_any_plausible_value(good_batch: Path, tmp_path: Path) -> None:
    broken = pd.read_csv(corrupt_batch(good_batch, tmp_path / "x.csv", "out_of_range"))

    assert broken["amount"].min() <= -1e9 and broken["amount"].max() >= 1e9
    assert len(broken) == len(pd.read_csv(good_batch))


@pytest.mark.unit
def test_empty_is_zero_bytes(good_batch: Path, tmp_path: Path) -> None:
    dest = corrupt_batch(good_batch, tmp_path / "x.csv", "empty")

    assert dest.stat().st_size == 0
    with pytest.raises(pd.errors.EmptyDataError):
        pd.read_csv(dest)


@pytest.mark.unit
@pytest.mark.parametrize("engine", ["c", "python", "pyarrow"])
def test_unparseable_really_fails_to_parse(engine: str, good_batch: Path, tmp_path: Path) -> None:
    dest = corrupt_batch(good_batch, tmp_path / "x.csv", "unparseable")

    with pytest.raises(pd.errors.ParserError):
        pd.read_csv(dest, engine=engine)  # type: ignore[arg-type]


@pytest.mark.unit
def test_corrupting_in_place_replaces_the_batch(good_batch: Path) -> None:
    corrupt_batch(good_batch, good_batch, "empty")

    assert good_batch.stat().st_size == 0


@pytest.mark.unit
def test_unknown_kind_or_column_is_refused(good_batch: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt_batch(good_batch, tmp_path / "x.csv", "typo")
    with pytest.raises(ValueError, match="'nope' is not in"):
        corrupt_batch(good_batch, tmp_path / "x.csv", "nulls", column="nope")
    with pytest.raises(ValueError, match="needs a numeric column"):
        corrupt_batch(good_batch, tmp_path / "x.csv", "out_of_range", column="country")


@pytest.mark.unit
def test_nulls_work_on_a_categorical_column_too(good_batch: Path, tmp_path: Path) -> None:
    broken = pd.read_csv(corrupt_batch(good_batch, tmp_path / "x.csv", "nulls", column="country"))

    assert 0.25 < broken["country"].isna().mean() < 0.35


# Command line -----------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_cli_writes_batches_and_prints_their_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["demand_forecast", "--out", str(tmp_path), "--batches", "2", "--rows", "50", "--corrupt", "empty"]
    )

    printed = capsys.readouterr().out.split()
    assert code == 0
    assert printed == [str(tmp_path / "2026-01-01.csv"), str(tmp_path / "2026-01-02.csv")]
    assert Path(printed[-1]).stat().st_size == 0  # the last batch is the corrupted one by default


@pytest.mark.unit
def test_cli_refuses_a_batch_index_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "breast_cancer",
                "--out",
                str(tmp_path),
                "--batches",
                "2",
                "--corrupt",
                "empty",
                "--corrupt-batch",
                "2",
            ]
        )
    assert not any(tmp_path.iterdir())


# The example configs and the data they describe -------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_example_config_loads_and_passes_the_deep_check(pipeline: str) -> None:
    config = load_config(PIPELINES_DIR / f"{pipeline}.yaml")

    assert config.name == pipeline
    assert config.target == TARGETS[pipeline]
    assert config.data.source == f"landing/{pipeline}/{{ds}}.csv"
    assert check_config_deep(config) == []
    assert config.gate.threshold is not None
    assert {route.conn_id for route in config.alerts} == {"slack_mlops", "smtp_mlops"}


@pytest.mark.unit
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_generated_data_meets_its_config_and_corruptions_break_it(pipeline: str) -> None:
    config = load_config(PIPELINES_DIR / f"{pipeline}.yaml")
    # Clean batches, drifted ones included, must pass: drift is for the drift report, not for validation.
    frame = pd.concat(_frames(pipeline, batches=2, feature_drift=1.0, drift_from=1), ignore_index=True)

    assert set(frame.columns) == set(config.feature_names) | {config.target}
    for feature in config.features:
        column = frame[feature.name]
        assert pd.api.types.is_numeric_dtype(column) == (feature.type == "numeric"), feature.name
        assert feature.nullable or column.notna().all(), feature.name
    for name, rule in config.expectations.columns.items():
        column = frame[name].dropna()
        assert rule.min is None or column.min() >= rule.min, name
        assert rule.max is None or column.max() <= rule.max, name
        assert rule.allowed is None or set(column) <= set(rule.allowed), name
        assert rule.max_null_fraction is None or frame[name].isna().mean() <= rule.max_null_fraction, name
    assert len(frame) / 2 >= config.expectations.row_count.min

    # The column the corruptions break by default is one the config forbids nulls in and bounds.
    broken = default_column(frame)
    rule = config.expectations.columns[broken]
    assert broken in config.numeric_features
    assert not next(f for f in config.features if f.name == broken).nullable
    assert rule.min is not None and rule.max is not None and rule.min > -1e9 and rule.max < 1e9
