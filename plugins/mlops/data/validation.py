"""Data validation: check a batch against the expectations its pipeline config declares.

The expectations come from two places of the config: the declared schema (every feature and the target
exist, numeric features have a numeric dtype, non-nullable columns hold no nulls) and the explicit rules
under ``expectations`` (row count, min/max, allowed values, a tolerated share of nulls). They run in an
ephemeral Great Expectations context, created once per process, and come back as a
:class:`~mlops.data.report.ValidationReport`: a verdict, one :class:`~mlops.data.report.Failure` per broken
rule in plain words, the full GX result, and renderings for a task failure message (``summary()``), for
storage (``to_json()``) and for people (``to_html()``, a self-contained page that renders offline).

Owns: the GX suite derived from a config (:func:`build_suite`), the process-wide GX context, running it on a
frame (:func:`validate_frame`) and GX's own Data Docs (:func:`build_data_docs`). Reading a batch file is
:mod:`mlops.data.reading`; the report, its reading of GX results and its HTML are :mod:`mlops.data.report`.
Their public names are re-exported here, so ``from mlops.data.validation import read_batch, ValidationReport``
keeps working.

This module may be imported at DAG parse time: pandas and great_expectations are imported inside the
functions that need them (``import great_expectations`` alone takes about 5 s).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import PipelineConfig
from mlops.core.categories import canonical_categories
from mlops.data.baseline import Baseline, baseline_expectations
from mlops.data.canonical import canonical_frame
from mlops.data.reading import read_batch
from mlops.data.report import (
    FILE_IS_READABLE,
    Failure,
    ValidationReport,
    expectation_kwargs,
    format_number,
    format_percent,
    json_safe,
)

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

__all__ = [
    "FILE_IS_READABLE",
    "NUMERIC_TYPE_LIST",
    "Failure",
    "ValidationReport",
    "build_data_docs",
    "build_suite",
    "read_batch",
    "validate_frame",
]

#: Dtype names accepted as numeric, spelled as GX 1.24 resolves them: numpy names, and pandas' nullable
#: dtypes by their class name. GX silently ignores the spellings pandas prints ("Int64", "Float64").
NUMERIC_TYPE_LIST: tuple[str, ...] = (
    *(f"int{bits}" for bits in (8, 16, 32, 64)),
    *(f"uint{bits}" for bits in (8, 16, 32, 64)),
    "float16",
    "float32",
    "float64",
    *(f"Int{bits}Dtype" for bits in (8, 16, 32, 64)),
    *(f"UInt{bits}Dtype" for bits in (8, 16, 32, 64)),
    "Float32Dtype",
    "Float64Dtype",
)

_DATASOURCE, _ASSET, _BATCH = "mlops", "batch", "whole_dataframe"

_gx_lock = threading.RLock()
_gx_state: tuple[AbstractDataContext, BatchDefinition] | None = None


# The suite --------------------------------------------------------------------------------------------------
def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {format_number(low)} and {format_number(high)}"
    return f">= {format_number(low)}" if low is not None else f"<= {format_number(high)}"  # type: ignore[arg-type]


def _values_text(values: list[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")


def build_suite(config: PipelineConfig) -> ExpectationSuite:
    """Derive the GX expectation suite of a pipeline's batches from its config.

    From the declared schema: every feature and the target exist; numeric features (and a regression
    target) have a numeric dtype (:data:`NUMERIC_TYPE_LIST`); non-nullable features and the target hold no
    nulls. From ``expectations``: ``row_count`` bounds the number of rows; per column, ``min``/``max`` bound
    the values, ``allowed`` lists the only values allowed, and ``max_null_fraction`` tolerates that share of
    nulls (it replaces the strict not-null rule of the schema for that column). A classification target
    gets no set of allowed labels unless the config lists one.

    Each expectation carries ``meta = {"rule": <plain words>, "source": <config field>}`` and the rule as
    its description, so a failure can always be traced to the line of config that asked for it.

    Args:
        config: A validated pipeline config.

    Returns:
        An ``ExpectationSuite`` named ``<pipeline>_batch``, not attached to any data context.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: list[Any] = []

    def add(expectation_cls: type, rule: str, source: str, **kwargs: Any) -> None:
        expectations.append(
            expectation_cls(**kwargs, description=rule, meta={"rule": rule, "source": source})
        )

    rules = config.expectations.columns
    categorical = set(config.categorical_features)
    rows = config.expectations.row_count
    if rows.max is not None:
        row_rule = f"the batch must have between {rows.min} and {rows.max} rows"
    else:
        row_rule = f"the batch must have at least {rows.min} row{'s' if rows.min != 1 else ''}"
    add(
        gxe.ExpectTableRowCountToBeBetween,
        row_rule,
        "expectations.row_count",
        min_value=rows.min,
        max_value=rows.max,
    )

    columns = [(f.name, f"features.{f.name}", f.type == "numeric", f.nullable) for f in config.features]
    columns.append((config.target, "target", config.task == "regression", False))
    for name, source, numeric, nullable in columns:
        role = "target" if source == "target" else "feature"
        add(gxe.ExpectColumnToExist, f"{role} {name} must exist", source, column=name)
        if numeric:
            why = "the regression target" if role == "target" else "declared type: numeric"
            add(
                gxe.ExpectColumnValuesToBeInTypeList,
                f"{name} must have a numeric dtype ({why})",
                f"{source}.type" if role == "feature" else "task",
                column=name,
                type_list=list(NUMERIC_TYPE_LIST),
            )
        rule = rules.get(name)
        if rule is not None and rule.max_null_fraction is not None:
            if rule.max_null_fraction < 1.0:
                add(
                    gxe.ExpectColumnValuesToNotBeNull,
                    f"{name} may be null in at most {format_percent(rule.max_null_fraction)} of rows",
                    f"expectations.columns.{name}.max_null_fraction",
                    column=name,
                    mostly=round(1.0 - rule.max_null_fraction, 12),
                )
        elif not nullable:
            add(
                gxe.ExpectColumnValuesToNotBeNull,
                f"{role} {name} must not be null" + ("" if role == "target" else " (nullable: false)"),
                f"{source}.nullable" if role == "feature" else "target",
                column=name,
            )
        if rule is not None and (rule.min is not None or rule.max is not None):
            add(
                gxe.ExpectColumnValuesToBeBetween,
                f"{name} must be {_range_text(rule.min, rule.max)}",
                f"expectations.columns.{name}.min/max",
                column=name,
                min_value=rule.min,
                max_value=rule.max,
            )
        if rule is not None and rule.allowed is not None:
            add(
                gxe.ExpectColumnValuesToBeInSet,
                f"{name} must be one of {_values_text(rule.allowed)}",
                f"expectations.columns.{name}.allowed",
                column=name,
                # A categorical feature's values are canonical text (mlops.data.canonical): so are these.
                value_set=canonical_categories(rule.allowed) if name in categorical else list(rule.allowed),
            )
    # Passed whole: ``suite.add_expectation`` on a suite outside a context needs an active data context.
    return gx.ExpectationSuite(name=f"{config.name}_batch", expectations=expectations)


# Running ----------------------------------------------------------------------------------------------------
def _gx() -> tuple[AbstractDataContext, BatchDefinition]:
    """The process-wide ephemeral context and its whole-dataframe batch definition (built on first use)."""
    global _gx_state
    with _gx_lock:
        if _gx_state is None:
            import great_expectations as gx

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = {"globally": False, "metric_calculations": False}
            batch_definition = (
                context.data_sources.add_pandas(_DATASOURCE)
                .add_dataframe_asset(_ASSET)
                .add_batch_definition_whole_dataframe(_BATCH)
            )
            _gx_state = (context, batch_definition)
        return _gx_state


def _forget(context: AbstractDataContext, suite_name: str, validation_name: str) -> None:
    """Remove one run's suite, validation definition and stored results from the shared context."""
    import great_expectations.exceptions as gx_exceptions

    for factory, name in ((context.validation_definitions, validation_name), (context.suites, suite_name)):
        try:
            factory.delete(name)
        except (gx_exceptions.DataContextError, KeyError, ValueError):
            pass
    store = context.validation_results_store
    for key in store.list_keys():
        store.remove_key(key)
    # The pandas execution engine keeps the last batch: without this, a validated frame stays in memory
    # until the next validation. (``batch_manager`` is public; clearing its caches is not: best effort.)
    engine = getattr(context.data_sources.get(_DATASOURCE), "execution_engine", None)
    manager = getattr(engine, "batch_manager", None)
    if manager is not None:
        manager.reset_batch_cache()
        manager.batch_data_cache.clear()


def validate_frame(
    df: pd.DataFrame, config: PipelineConfig, baseline: Baseline | None = None
) -> ValidationReport:
    """Validate a batch against the suite :func:`build_suite` derives from its config.

    Runs in a GX ephemeral context shared by the process (runs are serialised by a lock). A missing column
    does not stop the run: its existence check fails and the other checks on it are reported once, as
    part of "column is missing".

    Args:
        df: The batch; its declared columns are compared in their canonical dtypes
            (:func:`~mlops.data.canonical.canonical_frame`, applied here if the reader did not).
        config: Its pipeline's config.
        baseline: The pipeline's recorded baseline (:func:`mlops.data.baseline.active_baseline`): its checks
            (:func:`~mlops.data.baseline.baseline_expectations`, source ``baseline``) are added to the suite;
            in warn mode a broken one is a warning of the report, not a failure.

    Returns:
        The report; ``report.success`` is the verdict. Nothing is raised for a failed validation: the
        caller saves the report first, then raises :class:`~mlops.errors.DataValidationError` with
        ``report.summary()``.

    Example:
        >>> report = validate_frame(read_batch(path), config)  # doctest: +SKIP
        >>> if not report.success:  # doctest: +SKIP
        ...     raise DataValidationError(report.summary(), failed=[f.column or "" for f in report.failed])
    """
    import great_expectations as gx

    df = canonical_frame(df, config)
    suite = build_suite(config)
    if baseline is not None:  # the recorded baseline's checks, after the config's own
        extra = baseline_expectations(baseline, config)
        suite = gx.ExpectationSuite(name=suite.name, expectations=[*suite.expectations, *extra])
    validation_name = f"{suite.name}_validation"
    with _gx_lock:
        context, batch_definition = _gx()
        _forget(context, suite.name, validation_name)  # leftovers of an interrupted run
        try:
            suite = context.suites.add(suite)
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=validation_name, data=batch_definition, suite=suite)
            )
            result = definition.run(batch_parameters={"dataframe": df})
        finally:
            _forget(context, suite.name, validation_name)
    order = {expectation.id: i for i, expectation in enumerate(suite.expectations)}
    result_dict = json_safe(result.to_json_dict())
    result_dict["results"].sort(
        key=lambda entry: order.get(entry["expectation_config"].get("id"), len(order))
    )
    return ValidationReport.from_result(result_dict, pipeline=config.name, df=df)


# Data Docs --------------------------------------------------------------------------------------------------
def build_data_docs(result: ValidationReport | dict[str, Any], out_dir: str | Path) -> Path:
    """Build GX Data Docs (an index and one validation page) for a validation into a folder.

    The pages load Bootstrap, jQuery, Vega and Font Awesome from public CDNs, so they render fully only
    online; :meth:`ValidationReport.to_html` is the self-contained alternative. Takes about 0.2 s.

    Args:
        result: A report from :func:`validate_frame` (or read back with
            :meth:`ValidationReport.from_json`), or its ``result`` dict.
        out_dir: Folder to write the site into (created if needed; existing pages are kept).

    Returns:
        The path of the site's ``index.html``.

    Raises:
        ValueError: The report holds no GX result (a batch that could not be read).
    """
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    data = result.result if isinstance(result, ValidationReport) else result
    if not data.get("suite_name") or not data.get("results"):
        raise ValueError("no Great Expectations result to render (was the batch unreadable?)")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    validation = ExpectationSuiteValidationResultSchema().load(data)
    run_id = validation.meta.get("run_id")
    run_id = RunIdentifier(**run_id) if isinstance(run_id, dict) else (run_id or RunIdentifier())
    batch = next(
        (
            expectation_kwargs(e).get("batch_id")
            for e in data["results"]
            if expectation_kwargs(e).get("batch_id")
        ),
        _ASSET,
    )
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=validation.suite_name),
        run_id=run_id,
        batch_identifier=batch,
    )
    site_name = "mlops_report"
    site_config = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    with _gx_lock:
        context, _ = _gx()
        store = context.validation_results_store
        try:
            store.set(key, validation)
            context.add_data_docs_site(site_name=site_name, site_config=site_config)
            context.build_data_docs(site_names=[site_name])
        finally:
            if site_name in (context.get_config().data_docs_sites or {}):
                context.delete_data_docs_site(site_name)
            for stored in store.list_keys():
                store.remove_key(stored)
    return out / "index.html"
