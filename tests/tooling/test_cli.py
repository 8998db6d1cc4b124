"""`mlops config infer` and `mlops baseline show|reset`, as a user runs them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.config import load_config
from mlops.data.batches import ingest_batch, validate_and_file
from mlops.tooling.cli import main

pytestmark = pytest.mark.unit

COMPLETION = textwrap.dedent(
    """\
    name: {name}
    data:
      source: landing/{name}/{{ds}}.csv
    model:
      estimator: {estimator}
    gate:
      primary_metric: {metric}
      threshold: {threshold}
    """
)


def test_infer_writes_a_fragment_that_config_check_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sklearn.datasets import load_diabetes

    sample = tmp_path / "diabetes.parquet"
    load_diabetes(as_frame=True, scaled=False).frame.to_parquet(sample, index=False)
    proposal = tmp_path / "proposal.yaml"

    assert main(["config", "infer", str(sample), "--target", "target", "-o", str(proposal)]) == 0
    assert f"wrote {proposal}" in capsys.readouterr().out

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    completion = COMPLETION.format(
        name="diabetes", estimator="sklearn.linear_model.Ridge", metric="rmse", threshold=80
    )
    (pipelines / "diabetes.yaml").write_text(completion + proposal.read_text())
    assert main(["config", "check", "--dir", str(pipelines)]) == 0
    assert "ok   diabetes: regression, 10 features" in capsys.readouterr().out
    config = load_config(pipelines / "diabetes.yaml")
    assert config.expectations.columns["sex"].allowed == [1, 2]


def test_infer_prints_to_the_terminal_and_refuses_an_unknown_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "s.csv"
    pd.DataFrame({"a": np.linspace(0, 1, 60), "b": ["x", "y"] * 30}).to_csv(sample, index=False)

    assert main(["config", "infer", str(sample), "--target", "b"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Proposed by `mlops config infer`") and "task: classification" in out

    assert main(["config", "infer", str(sample), "--target", "c"]) == 1
    assert "'c' is not in the sample; its columns: a, b" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["config", "infer", str(sample)])  # --target is required


def test_baseline_show_and_reset(
    mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "tiny.yaml").write_text(
        COMPLETION.format(
            name="tiny", estimator="sklearn.linear_model.LogisticRegression", metric="accuracy", threshold=0.5
        )
        + "task: classification\ntarget: y\nfeatures:\n  - {name: x, type: numeric}\n"
        + "  - {name: code, type: categorical}\n"
    )
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    config = load_config(pipelines / "tiny.yaml")
    batch = tmp_path / "b.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.uniform(0, 5, 80), "code": rng.integers(0, 3, 80), "y": [0, 1] * 40}).to_csv(
        batch, index=False
    )

    assert main(["baseline", "show", "tiny"]) == 1
    assert "tiny: no baseline yet" in capsys.readouterr().out

    validate_and_file(config, ingest_batch(config, str(batch)))
    assert main(["baseline", "show", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "checked in warn mode" in out and "code" in out and "0, 1, 2" in out
    assert main(["baseline", "show", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 80

    assert main(["baseline", "reset", "tiny"]) == 0
    assert "the next accepted batch is recorded anew" in capsys.readouterr().out
    assert main(["baseline", "show", "tiny"]) == 1
    assert main(["baseline", "reset", "tiny"]) == 0
    assert "nothing to reset" in capsys.readouterr().out
