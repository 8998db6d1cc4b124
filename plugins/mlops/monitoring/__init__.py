"""Monitoring: windows of the inference log, their analysis (drift, quality, live performance), reports and
the MLflow records that are the policy's memory. The decision itself is :mod:`mlops.core.policy`; one whole
run is :func:`mlops.services.monitor.monitor_window`.

May import ``mlops.registry``, ``mlops.ml``, ``mlops.data``, ``mlops.core``, ``mlops.config``.
"""
