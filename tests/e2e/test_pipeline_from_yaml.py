"""A pipeline added as a YAML file only, for a dataset the project has never seen, trains and deploys."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from dagtools import champion, parse_dags, task_states

pytestmark = pytest.mark.e2e

# Written from docs/pipeline-config.md alone: sklearn's wine data (3 classes), which no example uses.
WINE_YAML = textwrap.dedent(
    """\
    name: wine_quality
    description: Tell three wine cultivars apart from their chemistry.
    task: classification
    data:
      source: landing/wine_quality/{ds}.parquet
    target: cultivar
    features:
      - {name: alcohol, type: numeric}
      - {name: malic_acid, type: numeric}
      - {name: ash, type: numeric}
      - {name: magnesium, type: numeric}
      - {name: flavanoids, type: numeric}
      - {name: color_intensity, type: numeric}
      - {name: proline, type: numeric}
      - {name: region, type: categorical, nullable: true}
    model:
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 50, random_state: 0}
    split: {holdout_fraction: 0.25, seed: 3}
    expectations:
      row_count: {min: 100}
      columns:
        alcohol: {min: 10, max: 16}
        region: {allowed: [north, south], max_null_fraction: 0.2}
        cultivar: {allowed: [class_0, class_1, class_2]}
    gate:
      primary_metric: f1
      threshold: 0.8
      max_regression: 0.02
      secondary:
        - {metric: accuracy, threshold: 0.8}
    schedule: "30 4 * * 1"
    airflow: {owner: wine-team, retries: 1}
    tags: [wine]
    """
)


def _wine_batch(path: Path) -> Path:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"od280/od315_of_diluted_wines": "od"})
    frame["cultivar"] = frame.pop("target").map(lambda t: f"class_{t}")
    frame["region"] = ["north" if i % 3 else "south" for i in range(len(frame))]
    frame.loc[frame.index[::10], "region"] = None
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def test_a_yaml_file_alone_makes_a_working_pipeline(
    airflow_db: Path, mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops import registry

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "wine_quality.yaml").write_text(WINE_YAML)
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    # The batch sits where the config's source says, for the run's date: no data_uri needed.
    import datetime as dt

    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    _wine_batch(mlops_home / "landing" / "wine_quality" / f"{today}.parquet")

    bag: Any = parse_dags()
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("wine_quality_training")
    assert dag is not None and "wine" in dag.tags and dag.owner == "wine-team"

    dag_run = dag.test(
        run_conf={"data_uri": "landing/wine_quality/{ds}.parquet", "model": None, "reason": ""}
    )

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["deploy"] == "success"
    assert champion("wine_quality") == 1
    version = registry.get_version("wine_quality", 1)
    assert version.tags["gate.verdict"] == "passed"
    assert float(version.tags["gate.challenger.f1"]) >= 0.8
