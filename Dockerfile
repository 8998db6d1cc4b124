# The image of every Airflow component, the MLflow server and the model server in docker-compose.yaml:
# the official Airflow image (same Airflow and Python as constraints.txt) plus this package, pinned.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root constraints.txt pyproject.toml README.md /opt/mlops-src/
COPY --chown=airflow:root plugins /opt/mlops-src/plugins
COPY --chown=airflow:root include /opt/mlops-src/include
RUN pip install --no-cache-dir -c /opt/mlops-src/constraints.txt /opt/mlops-src
# The model server's journal (a named volume in docker-compose.yaml takes this folder's owner and mode).
RUN mkdir -p -m 700 /opt/airflow/mlops/journal

# The DAG files and the pipeline configs they read (MLOPS_PIPELINES_DIR in docker-compose.yaml).
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root include/pipelines /opt/airflow/include/pipelines
