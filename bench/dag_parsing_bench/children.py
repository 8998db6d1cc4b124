"""The DAG files compared, and the programs each measurement runs in a fresh interpreter.

Each program prints one line ``BENCH <json>``; Airflow may log to stdout around it.
"""

from __future__ import annotations

EMPTY_DAG = 'from airflow.sdk import DAG\n\nwith DAG("empty", schedule=None):\n    pass\n'
# Context only: what any DAG with a schedule pays on top (Airflow imports its timetables lazily).
SCHEDULED_DAG = (
    "from datetime import datetime\n\nfrom airflow.sdk import DAG\n\n"
    'with DAG("empty_scheduled", schedule="@daily", start_date=datetime(2026, 1, 1)):\n    pass\n'
)

# The child programs. Each prints one line "BENCH <json>"; Airflow may log to stdout around it.
CHILD_SDK_IMPORT = """
import json, time
t = time.perf_counter()
import airflow.sdk
print("BENCH " + json.dumps(time.perf_counter() - t))
"""
CHILD_RUN_FILE = """
import json, runpy, sys, time
t = time.perf_counter()
runpy.run_path(sys.argv[1])
print("BENCH " + json.dumps(time.perf_counter() - t))
"""
CHILD_RUN_FILE_AFTER_SDK = """
import json, runpy, sys, time
import airflow.sdk
t = time.perf_counter()
runpy.run_path(sys.argv[1])
print("BENCH " + json.dumps(time.perf_counter() - t))
"""
CHILD_IMPORTTIME = """
import runpy, sys
import airflow.sdk
print("BENCH-START", file=sys.stderr, flush=True)
runpy.run_path(sys.argv[1])
"""
# What mlops_training.py does, phase by phase, after the shared import. A throwaway DAG is built first: the
# first DAG() of a process triggers Airflow's own lazy imports, which the empty peer pays as well.
PHASE_AIRFLOW = "Airflow's first `DAG()` in a process (the empty peer pays it too)"
PHASE_IMPORT = "`import mlops.airflow.dag_factory` (config, alerts, operators, errors, settings)"
PHASE_LOAD = "`load_all`: read, parse and validate every pipeline YAML"
PHASE_BUILD = "`build_training_dag` for every pipeline"
PHASE_YAML = "part of `load_all`: `yaml.safe_load` (PyYAML, pure Python)"
PHASE_PYDANTIC = "part of `load_all`: `PipelineConfig.model_validate`"
PHASE_CYAML = "alternative: `yaml.load(..., Loader=yaml.CSafeLoader)` (libyaml)"
CHILD_PHASES = f"""
import json, time
import airflow.sdk
import yaml
phases = {{}}
t = time.perf_counter()
with airflow.sdk.DAG("warm_up", schedule=None):
    pass
phases[{PHASE_AIRFLOW!r}] = time.perf_counter() - t
t = time.perf_counter()
from mlops import config
from mlops.airflow import dag_factory
from mlops.config import settings
phases[{PHASE_IMPORT!r}] = time.perf_counter() - t
t = time.perf_counter()
configs, _errors = config.load_all(settings.pipelines_dir())
phases[{PHASE_LOAD!r}] = time.perf_counter() - t
t = time.perf_counter()
for one in configs.values():
    dag_factory.build_training_dag(one)
phases[{PHASE_BUILD!r}] = time.perf_counter() - t
texts = [p.read_text(encoding="utf-8") for p in sorted(settings.pipelines_dir().glob("*.y*ml"))]
t = time.perf_counter()
documents = [yaml.safe_load(text) for text in texts]
phases[{PHASE_YAML!r}] = time.perf_counter() - t
t = time.perf_counter()
for document in documents:
    config.PipelineConfig.model_validate(document)
phases[{PHASE_PYDANTIC!r}] = time.perf_counter() - t
if getattr(yaml, "CSafeLoader", None):
    t = time.perf_counter()
    for text in texts:
        yaml.load(text, Loader=yaml.CSafeLoader)
    phases[{PHASE_CYAML!r}] = time.perf_counter() - t
print("BENCH " + json.dumps(phases))
"""
CHILD_DAGBAG = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - t
files = {stat.file.rsplit("/", 1)[-1]: stat.duration.total_seconds() for stat in bag.dagbag_stats}
print("BENCH " + json.dumps(
    {"seconds": seconds, "dags": len(bag.dags), "errors": sorted(bag.import_errors), "files": files}
))
"""
