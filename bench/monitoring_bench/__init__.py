"""The parts of ``bench/monitoring_benchmark.py``, one module per job; the script itself is the CLI and the run.

- ``frames``: the generated reference and current frames (20 features, each drawn from its own seeded stream).
- ``contenders``: plain Evidently and ours, each run in a fresh process of the script, timed and measured there.
- ``agreement``: both contenders' decisions, methods and scores, column by column.
- ``report``: the Markdown of section ``monitoring``.

The names the modules share are defined here.
"""

from __future__ import annotations

from mlops.config import Monitoring

SECTION = "monitoring"
SEED = 20_261_127
ROWS = 1_000_000
REFERENCE_ROWS = 100_000
REPORT_ROWS = Monitoring().report_rows  # the default a monitoring run draws its report from
SPEEDUP_GOAL = 5.0  # at least 5x faster than the plain report ...
MEMORY_GOAL = 0.5  # ... with at most half its peak memory
QUIET_CORES = 0.3  # before each contender, wait until the machine uses at most this many cores ...
QUIET_WAIT = 120.0  # ... for at most this many seconds
SCORE_TOLERANCE = 1e-9  # relative; string categories are summed in hash order, so the last bits may differ
PLAIN, OURS = "plain", "ours"
TITLES = {
    PLAIN: "plain Evidently `Report([DataDriftPreset()])`",
    OURS: "ours: `compute_drift` + HTML report on a 20,000-row sample",
}
