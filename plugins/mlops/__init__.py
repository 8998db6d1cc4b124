"""MLOps pipelines on Apache Airflow: validate, train, register, gate and deploy scikit-learn models.

The core modules (``config``, ``storage``, ``batches``, ``validation``, ``training``, ``registry``, ``gate``,
``deploy``, ``alerts``) are plain functions that run without a scheduler; ``operators`` and ``dag_factory``
wire them into Airflow. Importing this package loads nothing heavy.
"""

__version__ = "0.1.0"
