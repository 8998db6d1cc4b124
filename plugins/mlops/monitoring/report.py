"""The monitoring report of a window: Evidently's HTML report and the JSON summary."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from mlops.core.policy import Decision
from mlops.ml.drift import PREDICTION, drift_tests
from mlops.monitoring.analysis import WindowAnalysis
from mlops.monitoring.window import as_inputs

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

log = logging.getLogger(__name__)


# Reports --------------------------------------------------------------------------------------------------
def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=rows, random_state=seed) if len(frame) > rows else frame


def write_report(
    config: PipelineConfig,
    window: pd.DataFrame,
    reference: pd.DataFrame,
    analysis: WindowAnalysis,
    path: str,
) -> None:
    """Evidently's HTML report of the window: drift of every feature and of the prediction (with the configured
    tests) and a data summary, drawn from a seeded sample of ``monitoring.report_rows`` rows per side.

    The decisions are the full window's (``summary.json``); the report shows the distributions behind them.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    tests = drift_tests(config)
    columns = [*config.feature_names, PREDICTION]
    numeric = [*config.numeric_features] + ([PREDICTION] if config.task == "regression" else [])
    categorical = [*config.categorical_features] + ([PREDICTION] if config.task != "regression" else [])
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    seed = config.split.seed
    current = as_inputs(config, _sample(window, config.monitoring.report_rows, seed))
    current[PREDICTION] = _sample(window, config.monitoring.report_rows, seed)[PREDICTION].to_numpy()
    if config.task == "regression":
        import pandas as pd

        current[PREDICTION] = pd.to_numeric(current[PREDICTION], errors="coerce")
    ref = _sample(reference, config.monitoring.report_rows, seed)[columns]
    if config.task != "regression":
        current[PREDICTION] = current[PREDICTION].astype(str)
        ref = ref.assign(**{PREDICTION: ref[PREDICTION].astype(str)})
    per_method = {}
    per_threshold = {}
    for name in columns:
        column = (
            analysis.prediction
            if name == PREDICTION
            else (analysis.drift.columns.get(name) if analysis.drift else None)
        )
        test = tests[name]
        per_method[name] = column.method if column else test.method
        per_threshold[name] = column.threshold if column else test.threshold
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                per_column_method=per_method,
                per_column_threshold=per_threshold,
                drift_share=config.monitoring.drift.share,
            ),
            DataSummaryPreset(columns=columns),
        ],
        include_tests=True,
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    snapshot.save_html(path)


def summary_json(analysis: WindowAnalysis, decision: Decision) -> str:
    """The window's analysis and decision as JSON (``summary.json``).

    Raises:
        TypeError: A value is neither JSON, a date nor a numpy scalar: a method or an object would otherwise be
            written as its repr (``<bound method ...>``) for people to read.
    """
    return json.dumps({**analysis.to_dict(), "decision": decision.to_dict()}, indent=2, default=_plain)


def _plain(value: Any) -> Any:
    """A JSON value for the few non-JSON types a summary holds (dates, numpy scalars); nothing else."""
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    raise TypeError(
        f"summary.json: a {type(value).__name__} is not a JSON value; "
        "convert it in WindowAnalysis.to_dict or Decision.to_dict"
    )
