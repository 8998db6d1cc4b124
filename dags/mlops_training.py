"""Airflow training DAGs of the MLOps kit: one ``<pipeline>_training`` DAG per YAML file in
``include/pipelines/`` (or ``$MLOPS_PIPELINES_DIR``). Adding a pipeline needs a YAML file, no Python.
A broken YAML file drops only its own DAG; ``mlops_config_errors.py`` reports why.
"""

from mlops.airflow.dag_factory import build_dags

globals().update(build_dags())
