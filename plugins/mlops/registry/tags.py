"""MLflow tag conventions shared by writers and readers: the monitoring runs' tags and experiment name.

The monitoring service writes these tags; the model cards and the Models page read them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


#: Tags of a monitoring run in the MLflow experiment ``<pipeline>-monitoring`` (the policy's memory).
TAG_DECISION = "mlops.monitoring.decision"


TAG_REASONS = "mlops.monitoring.reasons"


TAG_DRIFTED = "mlops.monitoring.drifted"


TAG_START = "mlops.monitoring.window_start"


TAG_END = "mlops.monitoring.window_end"


TAG_VERSION = "mlops.model_version"


TAG_DATA_URI = "mlops.monitoring.retrain_data_uri"


def monitoring_experiment(pipeline: str) -> str:
    return f"{pipeline}-monitoring"
