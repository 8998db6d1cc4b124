"""The model server: hot-swapped champion (and canary, shadow) models, the inference log, feedback, metrics."""
