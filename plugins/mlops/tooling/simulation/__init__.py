"""``mlops simulate``: replay a drifting stream through the real model server and compare retraining policies.

One stream of windows (one simulated day each) is generated once: every window is drawn from the same
distribution as the first champion's training batch until the *onset*, and from a shifted one from then on
(feature drift: the inputs move; concept drift: the relation between inputs and target changes). The same
stream is then replayed under three policies, each in its own fresh ``MLOPS_HOME`` (MLflow store, data store,
inference log) under ``--out``:

``never``     the first champion serves throughout;
``periodic``  retrain every ``--period`` windows on the labelled live rows of that period;
``drift``     retrain when :func:`mlops.core.policy.decide` says so, under the pipeline's retraining policy.

For each policy the first champion is trained on an initial batch through the core functions (ingest,
validate, train, register, gate, deploy: :func:`train_and_deploy`), and ``mlops serve`` runs as a subprocess.
Per window the rows are sent to ``POST /predict`` one record a request (the inference log joins a feedback
label to its request id, so a row needs its own id), the true labels of the window ``--label-delay`` windows
back go to ``POST /feedback``, and once the server has flushed its log, monitoring reads the window back
(:func:`mlops.monitoring.window.read_window`), analyzes it against the champion's reference and decides. The
quality of a window is the champion's primary metric on the predictions it served, against the true targets.
A retraining writes the labelled live rows as a batch (:func:`mlops.monitoring.window.retrain_batch`), trains a
challenger, and lets the gate decide; the server follows the alias.

Two clocks: the inference log holds real wall-clock times, so each window is read back by the real
``[start, end)`` recorded while it was replayed; the policy (cooldown, cap per day, the retraining range)
reasons in simulated time, one day per window. :class:`Clock` maps one to the other.

Outputs in ``--out``: ``simulation.csv`` (a row per window and policy), ``simulation.md`` (the summary and the
goals of issue 4) and ``simulation.png`` (quality per window of each policy, and the drift policy's drift).

The modules: ``settings`` (what to simulate), ``stream`` (the windows and the two clocks), ``training`` (a
training through the core functions), ``client`` (the server subprocess and the replay's HTTP client),
``runner`` (one policy, and every policy), ``agreement`` (the plain Evidently cross-check), ``results`` (the
rows, summaries and goals) and ``output`` (CSV and plot).

>>> result = run_simulation(config, SimulationSettings(out=Path("/tmp/sim")), progress=print)  # doctest: +SKIP
>>> result.summary_markdown()                                                                 # doctest: +SKIP
"""

from __future__ import annotations

from mlops.tooling.simulation.agreement import (
    evidently_agreement,
    plain_decisions,
)
from mlops.tooling.simulation.client import (
    ATTEMPTS,
    BUFFERED_ROWS,
    Replayer,
    buffered_rows,
    free_port,
    metric_value,
    model_server,
    simulation_config,
    wait_for_flush,
    write_config,
)
from mlops.tooling.simulation.output import (
    plot,
    write_csv,
)
from mlops.tooling.simulation.results import (
    CSV_COLUMNS,
    QUALITY_TOLERANCE,
    Goal,
    PolicyRun,
    PolicySummary,
    SimulationResult,
    WindowResult,
    evaluate_goals,
)
from mlops.tooling.simulation.runner import (
    PolicyRunner,
    policy_environment,
    request_records,
    run_simulation,
    window_quality,
)
from mlops.tooling.simulation.settings import (
    CONCURRENCY,
    DRIFT,
    FLUSH_SECONDS,
    NEVER,
    PERIODIC,
    POLICIES,
    SIMULATED_START,
    STREAM_DATE,
    SimulationError,
    SimulationSettings,
)
from mlops.tooling.simulation.stream import (
    Clock,
    Stream,
    make_stream,
)
from mlops.tooling.simulation.training import (
    Deployment,
    train_and_deploy,
)

__all__ = [
    "ATTEMPTS",
    "BUFFERED_ROWS",
    "CONCURRENCY",
    "CSV_COLUMNS",
    "Clock",
    "DRIFT",
    "Deployment",
    "FLUSH_SECONDS",
    "Goal",
    "NEVER",
    "PERIODIC",
    "POLICIES",
    "PolicyRun",
    "PolicyRunner",
    "PolicySummary",
    "QUALITY_TOLERANCE",
    "Replayer",
    "SIMULATED_START",
    "STREAM_DATE",
    "SimulationError",
    "SimulationResult",
    "SimulationSettings",
    "Stream",
    "WindowResult",
    "buffered_rows",
    "evaluate_goals",
    "evidently_agreement",
    "free_port",
    "make_stream",
    "metric_value",
    "model_server",
    "plain_decisions",
    "plot",
    "policy_environment",
    "request_records",
    "run_simulation",
    "simulation_config",
    "train_and_deploy",
    "wait_for_flush",
    "window_quality",
    "write_config",
    "write_csv",
]
