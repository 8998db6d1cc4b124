"""The Airflow shell: the DAG factory, the operators, the approval step, the failure and event alerts, and the
task ids. The only runtime package that imports ``airflow`` (with ``mlops.ui``, the Airflow UI plugin).

Each operator takes its inputs as templated fields or XComArgs and calls one service or core function.
"""
