"""The monitoring reference of a model version: a seeded sample of its training rows with its predictions.

Computed once when the version is trained (:func:`mlops.ml.training.train_model`) and stored with it as
``REFERENCE_ARTIFACT``; monitoring compares every window of live traffic against it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops.ml.drift import PREDICTION

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)


REFERENCE_ARTIFACT = "monitoring/reference.parquet"


# The reference --------------------------------------------------------------------------------------------
def build_reference(config: PipelineConfig, model: Any, train: pd.DataFrame) -> pd.DataFrame:
    """A seeded sample (at most ``monitoring.reference_rows``) of the training rows: features, target and the
    model's prediction on each row. Called once per version, when it is trained."""
    rows = config.monitoring.reference_rows
    sample = train.sample(n=rows, random_state=config.split.seed) if len(train) > rows else train
    frame = sample[[*config.feature_names, config.target]].reset_index(drop=True)
    frame[PREDICTION] = model.predict(frame[config.feature_names])
    return frame
