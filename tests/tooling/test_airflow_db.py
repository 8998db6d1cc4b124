"""A fresh home just works: ``mlops env`` migrates its Airflow database once, and the documented ``airflow``
commands run on it without a manual ``airflow db migrate``.

Everything runs in subprocesses with an environment cleared of this session's Airflow and MLOps settings,
as on a new machine (the commands as README.md shows them: ``eval "$(.venv/bin/mlops env)"``, then
``.venv/bin/airflow ...``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _clean_env() -> dict[str, str]:
    """This process's environment without anything that points Airflow, MLflow or the kit somewhere."""
    prefixes = ("AIRFLOW", "MLOPS_", "MLFLOW_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _mlops_env(home: Path) -> tuple[dict[str, str], str]:
    """``mlops env --home`` evaluated as a shell would: (the exported variables, what it said on stderr)."""
    done = subprocess.run(
        [str(BIN / "mlops"), "env", "--home", str(home)],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    exports = {}
    for line in done.stdout.splitlines():
        assert line.startswith("export "), f"not an export line (stdout is for eval): {line!r}"
        key, _, value = line.removeprefix("export ").partition("=")
        (exports[key],) = shlex.split(value)
    return exports, done.stderr


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "airflow"), *args], capture_output=True, text=True, env=env, timeout=300)


def test_mlops_env_on_a_fresh_home_migrates_once_and_airflow_commands_work(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"  # not even the folder exists
    exports, said = _mlops_env(home)

    airflow_home = Path(exports["AIRFLOW_HOME"])
    assert exports["MLOPS_HOME"] == str(home) and airflow_home == home / "airflow"
    assert "Airflow metadata database ready" in said
    stamp = json.loads((airflow_home / ".mlops-db-migrated.json").read_text())
    assert stamp["database"] == f"sqlite:///{airflow_home / 'airflow.db'}" and stamp["revision"]

    env = {**_clean_env(), **exports}
    listed = _airflow(env, "dags", "list-import-errors")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "migration required" not in listed.stdout + listed.stderr
    parsed = _airflow(env, "dags", "reserialize")
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    dags = _airflow(env, "dags", "list", "--output", "json")
    assert dags.returncode == 0, dags.stderr
    (listing,) = [line for line in dags.stdout.splitlines() if line.startswith("[")]  # warnings share stdout
    assert "breast_cancer_training" in {d["dag_id"] for d in json.loads(listing)}

    # Once: the next call finds the database up to date and says nothing.
    again, said = _mlops_env(home)
    assert again == exports and said == ""

    # A database that went away is migrated again.
    (airflow_home / "airflow.db").unlink()
    _, said = _mlops_env(home)
    assert "Airflow metadata database ready" in said
    assert _airflow(env, "dags", "list-import-errors").returncode == 0
