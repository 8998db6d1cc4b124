"""The Models page: an Airflow 3 plugin that shows every pipeline's champion, challenger, last gate verdict and
last monitoring decision, with links to MLflow and to the reports.

- :mod:`mlops.ui.models`: what the page shows, read from the pipeline configs and MLflow (plain functions).
- :mod:`mlops.ui.auth`: the caller's Airflow token, checked with Airflow's own JWT validation.
- :mod:`mlops.ui.app`: the FastAPI app (HTML page, JSON API, report downloads), a thin layer.
- :mod:`mlops.ui.plugin`: the ``AirflowPlugin`` that mounts the app and adds "Models" to the Airflow nav.
"""
