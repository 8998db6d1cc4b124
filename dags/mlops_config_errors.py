"""Surfaces broken pipeline configs as Airflow DAG import errors.

The valid pipelines keep their DAGs (see ``mlops_training.py``); every broken YAML file is listed here, with the
file, the field and what is allowed, so that ``airflow dags list-import-errors`` and the Airflow UI say why a
pipeline's DAG is missing.
"""

from mlops.airflow.dag_factory import config_problems
from mlops.errors import ConfigError

if problems := config_problems():
    raise ConfigError.broken_pipelines(problems)
