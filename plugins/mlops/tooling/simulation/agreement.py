"""Agreement with a plain Evidently report: the same per-feature drift decisions as our analysis?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig
    from mlops.monitoring.analysis import WindowAnalysis


def evidently_agreement(
    config: PipelineConfig, window: pd.DataFrame, reference: pd.DataFrame, analysis: WindowAnalysis
) -> tuple[int, list[str]]:
    """Run a plain ``Report([DataDriftPreset(per_column_method=..., per_column_threshold=...)])`` with the
    methods and thresholds our analysis used, and compare its per-feature drift decisions with ours.

    Returns:
        The number of features compared and the names of those where the decisions differ.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from mlops.monitoring.window import as_inputs

    assert analysis.drift is not None
    columns = analysis.drift.columns
    names = list(columns)
    definition = DataDefinition(
        numerical_columns=[n for n in config.numeric_features if n in columns],
        categorical_columns=[n for n in config.categorical_features if n in columns],
    )
    preset = DataDriftPreset(
        columns=names,
        per_column_method={name: column.method for name, column in columns.items()},
        per_column_threshold={name: column.threshold for name, column in columns.items()},
        drift_share=config.monitoring.drift.share,
    )
    snapshot = Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(as_inputs(config, window)[names], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[names], data_definition=definition),
    )
    theirs = plain_decisions(snapshot.dict())
    different = [name for name in names if theirs.get(name) != columns[name].drifted]
    return len(names), different


def plain_decisions(snapshot: dict[str, Any]) -> dict[str, bool]:
    """Per column, whether Evidently's value-drift test failed (drift), from ``Snapshot.dict()``."""
    decisions = {}
    for test in snapshot.get("tests", []):
        params = (test.get("metric_config") or {}).get("params") or {}
        if str(params.get("type", "")).endswith(":ValueDrift") and "column" in params:
            decisions[params["column"]] = test.get("status") == "FAIL"
    return decisions
