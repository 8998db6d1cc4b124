"""Where things are, what was measured (the commit, its uncommitted changes), and clean environments."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

#: The checkout: ``bench/benchlib/repo.py`` -> the repository root.
REPO = Path(__file__).resolve().parents[2]
#: The interpreter's ``bin`` (the venv's): ``mlops``, ``mlflow``, ``uvicorn`` live here.
BIN_DIR = Path(sys.executable).parent
PIPELINES_DIR = REPO / "include" / "pipelines"
#: The Markdown file the benchmarks write their sections to.
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"
#: Prefixes of the settings of Airflow, MLflow and the kit: none of them may leak into a measurement.
KIT_PREFIXES = ("AIRFLOW", "MLOPS_", "MLFLOW_")


def git(*words: str, repo: Path = REPO) -> str:
    """``git <words>`` in ``repo``: its output, or "" when git fails."""
    result = subprocess.run(["git", *words], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def commit() -> str:
    """The short hash of ``HEAD``, or ``unknown`` outside a git checkout."""
    return git("rev-parse", "--short", "HEAD") or "unknown"


def dirty_paths(paths: Iterable[str]) -> list[str]:
    """Of ``paths`` (files or folders, relative to the checkout), those ``git status`` lists as changed."""
    listed = git("status", "--porcelain", "--", *paths)
    return [line.split(None, 1)[1] for line in listed.splitlines() if line.strip()]


def clean_environ(
    prefixes: tuple[str, ...] = KIT_PREFIXES, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A copy of ``environ`` (this process's by default) without the variables whose names start with ``prefixes``."""
    source = os.environ if environ is None else environ
    return {key: value for key, value in source.items() if not key.startswith(prefixes)}


def scrub_environ(prefixes: tuple[str, ...] = KIT_PREFIXES) -> None:
    """Remove from this process's environment (and so from its children's) every variable named ``prefixes*``."""
    for key in list(os.environ):
        if key.startswith(prefixes):
            del os.environ[key]
