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
def test_ruff_bans_heavy_imports_at_dag_top_level(tmp_path: Path) -> None:
    """The ban really bites: a DAG file importing pandas at module level is reported (TID253)."""
    ruff = Path(sys.executable).parent / "ruff"
    probe = REPO / "dags" / "_probe_heavy_import.py"
    probe.write_text('"""Probe."""\n\nimport pandas\n\nprint(pandas)\n')
    try:
        result = subprocess.run([str(ruff), "check", str(probe)], cwd=REPO, capture_output=True, text=True)
    finally:
        probe.unlink()
    assert result.returncode == 1 and "TID253" in result.stdout, result.stdout
