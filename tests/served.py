"""What the model server would have logged: the champion's answers to a frame, and labels sent later.

Shared by the tests that need an inference log without a running server (monitoring DAG, Models page).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


def log_served(
    config: Any, frame: Any, start: datetime, tag: str, label_delay: timedelta | None = None
) -> None:
    """One prediction a minute from ``start``, request ids ``<tag>-<i>``; with ``label_delay``, each row's true
    label (``config.target``) arrives that long after ``start``."""
    from mlops import registry
    from mlops.monitoring import store as monitoring
    from mlops.serving.inference_log import InferenceLog

    version = registry.alias_version(config.name, registry.CHAMPION)
    predictions = monitoring.load_champion_model(config, version).predict(frame[config.feature_names])
    log = InferenceLog.from_config(config)
    log.log_predictions(
        {
            "time": start + timedelta(minutes=i),
            "request_id": f"{tag}-{i}",
            "model_version": version,
            "route": "champion",
            "inputs": {name: float(frame[name].iat[i]) for name in config.feature_names},
            "prediction": int(predictions[i]),
        }
        for i in range(len(frame))
    )
    if label_delay is not None:
        for i in range(len(frame)):
            log.log_feedback(f"{tag}-{i}", int(frame[config.target].iat[i]), start + label_delay)
    log.close()
