"""An estimator path is checked against the allowed module prefixes on the string, before anything is imported:
``this.Foo`` used to print the Zen of Python (import side effects) before the check refused it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlops.config import ModelSpec, PipelineConfig, check_config_deep, settings
from mlops.errors import ConfigError

PROBE = "mlops_probe_estimators"  # a module that records its own import
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module whose import leaves a marker file: proof of an import, whatever ``sys.modules``."""
    marker = tmp_path / "imported"
    (tmp_path / f"{PROBE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "from sklearn.linear_model import LogisticRegression as Model\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PROBE, raising=False)
    return marker


def _not_imported(module: str, marker: Path | None = None) -> None:
    assert module not in sys.modules, f"{module} was imported"
    assert marker is None or not marker.exists(), f"{module} ran its code"


@pytest.mark.unit
@pytest.mark.parametrize(
    "path", ["this.Foo", "os.system", "subprocess.Popen", "sklearnx.Evil", "builtins.eval"]
)
def test_an_estimator_outside_the_allowed_modules_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="not in an allowed estimator module") as caught:
        ModelSpec(estimator=path)
    assert "sklearn, xgboost, lightgbm" in str(caught.value) and "MLOPS_ESTIMATOR_MODULES" in str(
        caught.value
    )
    if path.startswith(("this.", "sklearnx.")):
        _not_imported(path.split(".")[0])


@pytest.mark.unit
def test_a_refused_module_is_never_imported(probe: Path, breast_cancer: PipelineConfig) -> None:
    from mlops.ml.training import build_pipeline, default_seed, effective_config

    with pytest.raises(ValueError, match="not in an allowed estimator module"):
        ModelSpec(estimator=f"{PROBE}.Model")
    with pytest.raises(ConfigError, match="not in an allowed estimator module"):
        effective_config(breast_cancer, {"estimator": f"{PROBE}.Model", "params": {}})  # a run's override
    # A config built without validation meets the same check in the deep check and in training.
    unchecked = breast_cancer.model_copy(
        update={"model": ModelSpec.model_construct(estimator=f"{PROBE}.Model")}
    )
    [problem] = check_config_deep(unchecked)
    assert problem.startswith("field 'model.estimator'") and "not in an allowed estimator module" in problem
    with pytest.raises(ConfigError, match="not in an allowed estimator module"):
        build_pipeline(unchecked)
    assert default_seed(unchecked) is None
    _not_imported(PROBE, probe)


@pytest.mark.unit
def test_the_operator_adds_a_module_prefix(
    probe: Path, breast_cancer: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_ESTIMATOR_MODULES", f" acme_models , {PROBE}. ")
    assert settings.estimator_modules()[-2:] == ("acme_models", PROBE)

    spec: Any = ModelSpec(estimator=f"{PROBE}.Model", params={"C": 0.5})
    _not_imported(PROBE, probe)  # validation reads the string only
    assert check_config_deep(breast_cancer.model_copy(update={"model": spec})) == []
    assert probe.exists(), "the deep check imports an allowed module"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("sklearn.ensemble.RandomForestClassifier", True),
        ("xgboost.XGBClassifier", True),
        ("lightgbm.LGBMRegressor", True),
        ("mlops_datagen.faulty.SlowClassifier", True),  # the kit's demo models
        ("mlops_datagen.generate.Anything", False),
        ("sklearn", False),
        ("sklearn_extra.Thing", False),
    ],
)
def test_prefixes_match_whole_module_names(path: str, allowed: bool) -> None:
    assert settings.estimator_allowed(path) is allowed


@pytest.mark.unit
def test_a_config_naming_this_foo_is_refused_without_importing_this(tmp_path: Path) -> None:
    """In a fresh interpreter, so that no earlier test's imports decide: the whole YAML path (``load_config``,
    ``mlops config check``) refuses ``this.Foo``, and ``this`` (which prints the Zen of Python on import) is
    never imported."""
    yaml = (REPO / "include" / "pipelines" / "breast_cancer.yaml").read_text()
    assert "estimator: sklearn.linear_model.LogisticRegression" in yaml
    config = tmp_path / "zen.yaml"
    config.write_text(yaml.replace("sklearn.linear_model.LogisticRegression", "this.Foo"))
    script = textwrap.dedent(
        f"""
        import sys
        from mlops.config import load_config
        from mlops.errors import ConfigError
        try:
            load_config({str(config)!r})
        except ConfigError as exc:
            print("REFUSED", "not in an allowed estimator module" in str(exc))
        print("IMPORTED" if "this" in sys.modules else "NOT IMPORTED")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-3:] == ["REFUSED True", "NOT IMPORTED", ""], done.stdout
    assert "Beautiful is better than ugly" not in done.stdout + done.stderr
