"""The parts of ``bench/serving_benchmark.py``, one module per job; the script itself is the CLI and the run.

- ``model``: the model under test (trained and promoted in a temporary home), the in-process floor (raw
  ``predict``) and the steps of one request timed alone.
- ``in_process``: our ASGI app called in-process, with the functions of the request path timed in place.
- ``servers``: the servers under test (ours, MLflow's, ours instrumented for the diagnostics), their answer
  checked against raw ``predict``, our micro-batch counters.
- ``wrk``: the load generator: one wrk run, a cell (batch size x concurrency) with its CPU shares, the waiting for
  a quiet machine.
- ``diagnostics``: our server again in variants, and cProfile of it, on the load shapes whose goal was missed.
- ``report``: the goals and the Markdown of section ``serving``.

The names the modules share are defined here.
"""

from __future__ import annotations

SECTION = "serving"
PIPELINE = "breast_cancer"
BATCH_SIZES = (1, 100)
#: Concurrency -> wrk threads and connections.
LOADS = {1: ("-t1", "-c1"), 32: ("-t2", "-c32")}
WRK_TIMEOUT = "10s"
READY_TIMEOUT = 180.0
OURS, MLFLOW = "ours", "mlflow"
#: Our server with `serving.inference_log.journal: false`, on the batch-1 shapes only: what durability costs.
OURS_NO_JOURNAL = "ours-no-journal"
SERVER_TITLES = {
    OURS: "ours (`mlops serve`)",
    OURS_NO_JOURNAL: "ours, journal off",
    MLFLOW: "MLflow (`mlflow models serve`)",
}
JOURNAL_SHAPES = [(1, 32), (1, 1)]
# Goals.
SPEEDUP_GOAL = 20.0  # batch 1, concurrency 32: at least 20x MLflow's requests/s ...
P99_GOAL = 10.0  # ... with p99 at most a tenth of MLflow's
PER_ROW_GOAL = 2.0  # batch 100: per-row cost within 2x of raw per-row predict
P50_GOAL_MS = 3.0  # concurrency 1: p50 under 3 ms
JOURNAL_COST_GOAL = 0.10  # batch 1, concurrency 32: the journal costs at most 10 % of the requests/s
