"""Machine learning: building and training the scikit-learn pipeline, metrics, drift statistics, the
monitoring reference and per-slice metrics.

May import ``mlops.data``, ``mlops.core``, ``mlops.config`` and ``mlops.errors``; never the registry.
"""
