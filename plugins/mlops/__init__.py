"""MLOps pipelines on Apache Airflow: validate, train, register, gate, deploy, serve, monitor and retrain.

One sub-package per layer; each may import only the layers below it (docs/architecture.md has the picture,
``lint-imports`` checks it):

- ``mlops.tooling``: what people run: the ``mlops`` CLI, the demo, the simulation, the native stack;
- ``mlops.airflow``: the Airflow shell: DAG factory, operators, approval, alerts, task ids;
- ``mlops.ui``: the Models page, an Airflow UI plugin;
- ``mlops.services``: one function per pipeline step (gate, deploy, smoke test, monitor, reproduce);
- ``mlops.serving``: the model server;
- ``mlops.monitoring``: windows of the inference log, their analysis, reports and records;
- ``mlops.registry``: MLflow's registry: versions, aliases, promotion, audit, governance, model cards;
- ``mlops.ml``: training, metrics, drift statistics, the monitoring reference, slice metrics;
- ``mlops.data``: storage, batches, validation, the inference log's format;
- ``mlops.core``: pure decisions: the gate verdict, slices, the retraining policy, the canary, semver;
- ``mlops.config``: the pipeline YAML schema and the process settings;
- ``mlops.errors``: the exception hierarchy.

Importing this package loads nothing heavy.
"""

__version__ = "0.1.0"
