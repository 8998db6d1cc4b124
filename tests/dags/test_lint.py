"""Static checks run with the suite: ruff (with Airflow's AIR rules and, for dags/, banned heavy imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.unit
def test_ruff_check_is_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.unit
def test_ruff_bans_heavy_imports_at_dag_top_level() -> None:
    """The ban really bites: a DAG file importing pandas at module level is reported (TID253). The probe goes
    through stdin under a name in dags/, so ruff applies dags/ruff.toml and nothing is written into dags/."""
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--stdin-filename", str(REPO / "dags" / "_probe_heavy_import.py"), "-"],
        input='"""Probe."""\n\nimport pandas\n\nprint(pandas)\n',
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "TID253" in result.stdout, result.stdout
    assert not (REPO / "dags" / "_probe_heavy_import.py").exists()
