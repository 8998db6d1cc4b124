"""The parts of ``bench/run_benchmarks.py`` (section ``dag-parsing``); the script itself measures and runs.

- ``children``: the DAG files compared and the programs each measurement runs in a fresh interpreter.
- ``demo``: ``mlops demo`` on a fresh home, and the steps it printed.
- ``report``: the Markdown of section ``dag-parsing``.

The names the modules share are defined here.
"""

from __future__ import annotations

from benchlib.repo import KIT_PREFIXES, REPO

DAGS_DIR = REPO / "dags"
OUR_DAG_FILE = DAGS_DIR / "mlops_training.py"
GOAL = 1.25
#: What a child prints before its JSON result.
MARK = "BENCH "
SECTION = "dag-parsing"
#: Any Airflow, MLflow or kit setting that could leak into a child, and a leftover ``-X importtime``.
LEAKS = (*KIT_PREFIXES, "PYTHONPROFILEIMPORTTIME")
