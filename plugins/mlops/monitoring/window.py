"""A window of the inference log: the predictions served in a time range, their features and late labels.

Also the retraining batch written from a window's labelled rows, and a reader that reads each range once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mlops.config import settings
from mlops.data import storage
from mlops.data.canonical import typed_features
from mlops.errors import MlopsError, MonitoringError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)


LABEL = "label"


# The window -----------------------------------------------------------------------------------------------
def read_window(config: PipelineConfig, start: datetime, end: datetime) -> pd.DataFrame:
    """The predictions served in ``[start, end)`` with their features as columns, ``prediction``, and
    ``label`` / ``feedback_time`` where feedback arrived (at any time up to now: labels come late).

    Raises:
        MonitoringError: a part of the log cannot be read (the file is named).
    """
    from mlops.data.inference_log import inference_log_uri, join_feedback, read_feedback, read_inference_log

    uri = inference_log_uri(config.name, config.serving.inference_log.uri)
    try:
        predictions = read_inference_log(uri, config.name, start.date(), end.date())
        feedback = read_feedback(uri, config.name, start.date(), None)
    except MlopsError as exc:
        raise MonitoringError(f"pipeline '{config.name}': the inference log cannot be read: {exc}") from exc
    in_window = predictions[(predictions["time"] >= start) & (predictions["time"] < end)]
    frame = join_feedback(in_window, feedback).rename(
        columns={f"input.{name}": name for name in config.feature_names}
    )
    for name in config.feature_names:
        if name not in frame.columns:
            frame[name] = float("nan") if name in config.numeric_features else None
    return frame.reset_index(drop=True)


def as_inputs(config: PipelineConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Feature columns in the canonical dtypes of training (:func:`mlops.data.canonical.typed_features`):
    numeric as float, categorical as canonical text, so ``3`` logged from JSON and ``"3"`` from a CSV are one
    category."""
    return typed_features(frame, config, coerce=True)


def labels_as_target(config: PipelineConfig, labels: pd.Series) -> pd.Series:
    import pandas as pd

    if config.task == "regression":
        return pd.to_numeric(labels, errors="coerce")
    numeric = pd.to_numeric(labels, errors="coerce")
    return numeric.astype("int64") if numeric.notna().all() else labels


def retrain_batch(
    config: PipelineConfig,
    start: datetime,
    end: datetime,
    stamp: str | None = None,
    *,
    reader: Callable[[datetime, datetime], pd.DataFrame] | None = None,
) -> str:
    """Write the labelled live rows of ``[start, end)`` as a training batch; return its URI.

    Args:
        reader: reads a range of the log (default :func:`read_window`); pass the one :func:`decide` counted
            the labels with, so the range is read once.

    Raises:
        MonitoringError: there is no labelled row in that range.
    """
    import io

    window = (reader or (lambda s, e: read_window(config, s, e)))(start, end)
    labelled = window[window[LABEL].notna()] if LABEL in window.columns else window.iloc[0:0]
    if labelled.empty:
        raise MonitoringError(
            f"pipeline '{config.name}': no labelled live row between {start.isoformat()} and {end.isoformat()}"
        )
    batch = as_inputs(config, labelled)
    batch[config.target] = labels_as_target(config, labelled[LABEL]).to_numpy()
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    # In the format the pipeline's batches declare (a CSV pipeline reads CSV), Parquet when it is 'auto'.
    suffix = "csv" if config.data.format == "csv" else "parquet"
    uri = storage.join(settings.store_uri(), config.name, "retrain", f"live-{stamp}.{suffix}")
    buffer = io.BytesIO()
    if suffix == "csv":
        batch.to_csv(buffer, index=False)
    else:
        batch.to_parquet(buffer, index=False)
    storage.write_bytes(uri, buffer.getvalue())
    log.info("Retraining batch of %s: %d labelled live rows -> %s", config.name, len(batch), uri)
    return uri


def window_reader(
    config: PipelineConfig, known: dict[tuple[datetime, datetime], pd.DataFrame] | None = None
) -> Callable[[datetime, datetime], pd.DataFrame]:
    """:func:`read_window` that reads each range once (``known``: ranges already read)."""
    cache = dict(known or {})

    def read(start: datetime, end: datetime) -> pd.DataFrame:
        if (start, end) not in cache:
            cache[(start, end)] = read_window(config, start, end)
        return cache[(start, end)]

    return read


def count_labels(
    config: PipelineConfig, reader: Callable[[datetime, datetime], pd.DataFrame] | None = None
) -> Callable[[datetime, datetime], int]:
    """A ``count_labels`` for :func:`decide` that reads the inference log (through ``reader`` if given)."""
    read = reader or window_reader(config)

    def count(start: datetime, end: datetime) -> int:
        window = read(start, end)
        return int(window[LABEL].notna().sum()) if LABEL in window.columns else 0

    return count
