"""Data validation: read a batch and check it against the expectations its pipeline config declares.

The expectations come from two places of the config: the declared schema (every feature and the target
exist, numeric features have a numeric dtype, non-nullable columns hold no nulls) and the explicit rules
under ``expectations`` (row count, min/max, allowed values, a tolerated share of nulls). They run in an
ephemeral Great Expectations context, created once per process, and come back as a
:class:`ValidationReport`: a verdict, one :class:`Failure` per broken rule in plain words, the full GX
result, and renderings for a task failure message (``summary()``), for storage (``to_json()``) and for
people (``to_html()``, a self-contained page that renders offline).

This module may be imported at DAG parse time: pandas and great_expectations are imported inside the
functions that need them (``import great_expectations`` alone takes about 5 s).
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import PipelineConfig
from mlops.errors import DataValidationError, StorageError

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

#: The expectation name of the one failure of a report on a batch that could not be read.
FILE_IS_READABLE = "file_is_readable"
_EXISTS = "expect_column_to_exist"
_TYPE = "expect_column_values_to_be_in_type_list"
_NOT_NULL = "expect_column_values_to_not_be_null"
_BETWEEN = "expect_column_values_to_be_between"
_IN_SET = "expect_column_values_to_be_in_set"
_ROW_COUNT = "expect_table_row_count_to_be_between"

_SAMPLE_SIZE = 5
_SUMMARY_ITEMS = 6
_DATASOURCE, _ASSET, _BATCH = "mlops", "batch", "whole_dataframe"
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".csv.zst", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")

_gx_lock = threading.RLock()
_gx_state: tuple[AbstractDataContext, BatchDefinition] | None = None


# Reading ----------------------------------------------------------------------------------------------------
def read_batch(path: str | Path, fmt: str = "auto") -> pd.DataFrame:
    """Read a local CSV or Parquet batch into a DataFrame.

    Args:
        path: Local file path (an s3:// batch is downloaded to a local path before it comes here).
        fmt: ``"csv"``, ``"parquet"`` or ``"auto"``: from the extension (``.csv``, ``.tsv``, compressed
            ``.csv.gz``..., ``.parquet``, ``.pq``); a file with another extension is taken as Parquet if it
            starts with Parquet's magic bytes, else as CSV.

    Returns:
        The batch, with the dtypes pandas infers (CSV) or stores (Parquet).

    Raises:
        StorageError: The file does not exist or cannot be opened.
        DataValidationError: The file is empty (0 bytes, no header, or a header and no rows) or cannot be
            parsed; the message names the file and quotes the parser.
        ValueError: ``fmt`` is not one of the three values above.

    Example:
        >>> df = read_batch("batches/2026-01-01.csv")  # doctest: +SKIP
    """
    import pandas as pd

    path = Path(path)
    if fmt not in ("auto", "csv", "parquet"):
        raise ValueError(f"format '{fmt}' is not supported; use 'auto', 'csv' or 'parquet'")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StorageError(f"{path}: cannot read the batch file: {exc.strerror or exc}") from None
    if not path.is_file():
        raise StorageError(f"{path}: is not a file")
    if size == 0:
        raise DataValidationError(f"{path}: the batch file is empty (0 bytes)")
    kind = _format_of(path) if fmt == "auto" else fmt
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(
                path, sep="\t" if path.name.lower().endswith(".tsv") else ",", low_memory=False
            )
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path}: the batch file has no header and no rows") from None
    except (ValueError, OSError) as exc:
        # pandas' ParserError, UnicodeDecodeError and pyarrow's ArrowInvalid are all ValueErrors.
        said = " ".join(str(exc).split()) or type(exc).__name__
        raise DataValidationError(f"{path}: cannot parse the batch file as {kind.upper()}: {said}") from None
    if frame.empty:
        raise DataValidationError(
            f"{path}: the batch file has no rows (columns: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    return frame


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    with path.open("rb") as handle:
        return "parquet" if handle.read(4) == b"PAR1" else "csv"


# The suite --------------------------------------------------------------------------------------------------
def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100, 4):g}%"


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {_num(low)} and {_num(high)}"
    return f">= {_num(low)}" if low is not None else f"<= {_num(high)}"  # type: ignore[arg-type]


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
                    f"{name} may be null in at most {_pct(rule.max_null_fraction)} of rows",
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
                value_set=list(rule.allowed),
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


def validate_frame(df: pd.DataFrame, config: PipelineConfig) -> ValidationReport:
    """Validate a batch against the suite :func:`build_suite` derives from its config.

    Runs in a GX ephemeral context shared by the process (runs are serialised by a lock). A missing column
    does not stop the run: its existence check fails and the other checks on it are reported once, as
    part of "column is missing".

    Args:
        df: The batch.
        config: Its pipeline's config.

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

    suite = build_suite(config)
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
    result_dict = _json_safe(result.to_json_dict())
    result_dict["results"].sort(
        key=lambda entry: order.get(entry["expectation_config"].get("id"), len(order))
    )
    return ValidationReport.from_result(result_dict, pipeline=config.name, df=df)


# The report -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """One broken rule, in plain words.

    Attributes:
        expectation: GX expectation type (``expect_column_values_to_be_between``...), or
            ``file_is_readable`` for a batch that could not be read.
        column: The column it is about, or None for table-level rules.
        unexpected_count: Rows that broke it, when the rule counts rows.
        unexpected_percent: Their share in percent (of non-null rows for value rules), when counted.
        sample: A few of the unexpected values (JSON-safe; distinct, in order of appearance).
        rule: The config rule, e.g. "mean_radius must be between 0 and 50".
        detail: What was observed, e.g. "120 rows outside [0, 50]" or "column is missing".
        sample_rows: Index labels of a few unexpected rows (JSON-safe).
    """

    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[Any]
    rule: str
    detail: str = ""
    sample_rows: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one batch.

    Attributes:
        success: True when every expectation passed.
        pipeline: Pipeline name.
        rows: Rows in the batch.
        evaluated: Expectations evaluated.
        failed: The broken rules; checks that could not run because their column is missing (or not
            numeric) are folded into that one failure.
        result: The full GX result (``to_json_dict()``), JSON-serialisable.
    """

    success: bool
    pipeline: str
    rows: int
    evaluated: int
    failed: list[Failure]
    result: dict[str, Any]

    # Construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_result(
        cls, result: dict[str, Any], *, pipeline: str, df: pd.DataFrame | None = None
    ) -> ValidationReport:
        """Build a report from a GX result dict (``ExpectationSuiteValidationResult.to_json_dict()``).

        Args:
            result: The GX result as a JSON-safe dict.
            pipeline: Pipeline name.
            df: The validated batch, if at hand: it gives the row count and explains a failed type check
                (which values are not numbers).
        """
        entries = result.get("results", [])
        missing = {_column(e) for e in entries if _type(e) == _EXISTS and not e.get("success")}
        mistyped = {_column(e) for e in entries if _type(e) == _TYPE and not e.get("success")}
        failed = [
            _failure(entry, df)
            for entry in entries
            if not entry.get("success") and not _folded(entry, missing, mistyped)
        ]
        rows = len(df) if df is not None else _observed_rows(entries)
        statistics = result.get("statistics", {})
        return cls(
            success=bool(result.get("success")),
            pipeline=pipeline,
            rows=rows,
            evaluated=int(statistics.get("evaluated_expectations", len(entries))),
            failed=failed,
            result=result,
        )

    @classmethod
    def for_unreadable(cls, pipeline: str, reason: str) -> ValidationReport:
        """A failed report for a batch file that is empty or cannot be parsed.

        Args:
            pipeline: Pipeline name.
            reason: Why, e.g. the message of the :class:`~mlops.errors.DataValidationError` from
                :func:`read_batch`.
        """
        failure = Failure(
            expectation=FILE_IS_READABLE,
            column=None,
            unexpected_count=None,
            unexpected_percent=None,
            sample=[],
            rule="the batch must be a readable CSV or Parquet file with a header and at least one row",
            detail=reason,
        )
        result = {
            "success": False,
            "results": [],
            "statistics": {
                "evaluated_expectations": 1,
                "successful_expectations": 0,
                "unsuccessful_expectations": 1,
                "success_percent": 0.0,
            },
            "meta": {"unreadable": reason},
        }
        return cls(success=False, pipeline=pipeline, rows=0, evaluated=1, failed=[failure], result=result)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """Rebuild a report from :meth:`to_dict` (or parsed :meth:`to_json`) output."""
        names = {f.name for f in dataclasses.fields(Failure)}
        return cls(
            success=bool(data["success"]),
            pipeline=data["pipeline"],
            rows=int(data["rows"]),
            evaluated=int(data["evaluated"]),
            failed=[Failure(**{k: v for k, v in f.items() if k in names}) for f in data["failed"]],
            result=data["result"],
        )

    @classmethod
    def from_json(cls, text: str) -> ValidationReport:
        """Rebuild a report from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    # Renderings -----------------------------------------------------------------------------------------
    @property
    def unsuccessful(self) -> int:
        """Expectations that failed, as GX counts them (checks on a missing column included)."""
        return int(self.result.get("statistics", {}).get("unsuccessful_expectations", len(self.failed)))

    def summary(self) -> str:
        """One short paragraph for a task failure message.

        Example: ``"2 of 31 expectations failed on 400 rows of credit_default: amount: 120 rows outside
        [0, 50000]; merchant_category: column is missing."``
        """
        if self.result.get("meta", {}).get("unreadable") is not None:
            return f"The batch of {self.pipeline} could not be read: {self.failed[0].detail}"
        if self.success:
            return f"All {self.evaluated} expectations passed on {self.rows} rows of {self.pipeline}."
        items = [f"{f.column}: {f.detail}" if f.column else f.detail for f in self.failed[:_SUMMARY_ITEMS]]
        if len(self.failed) > _SUMMARY_ITEMS:
            items.append(f"and {len(self.failed) - _SUMMARY_ITEMS} more (see the full report)")
        return (
            f"{self.unsuccessful} of {self.evaluated} expectations failed on {self.rows} rows of {self.pipeline}: "
            + "; ".join(items)
            + "."
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-safe dict (the summary included, for readers of the stored file)."""
        data = dataclasses.asdict(self)
        data["summary"] = self.summary()
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The report as strict JSON (no NaN or Infinity)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_html(self) -> str:
        """A self-contained HTML page: inline CSS, no scripts, nothing fetched from the network."""
        return _render_html(self)


# Turning GX results into words ------------------------------------------------------------------------------
def _type(entry: dict[str, Any]) -> str:
    return entry.get("expectation_config", {}).get("type", "")


def _kwargs(entry: dict[str, Any]) -> dict[str, Any]:
    return entry.get("expectation_config", {}).get("kwargs", {})


def _column(entry: dict[str, Any]) -> str | None:
    return _kwargs(entry).get("column")


def _meta(entry: dict[str, Any]) -> dict[str, Any]:
    return entry.get("expectation_config", {}).get("meta") or {}


def _observed_rows(entries: list[dict[str, Any]]) -> int:
    for entry in entries:
        if _type(entry) == _ROW_COUNT and isinstance(entry.get("result", {}).get("observed_value"), int):
            return entry["result"]["observed_value"]
    return 0


def _exception_message(entry: dict[str, Any]) -> str | None:
    """The message of an exception GX caught while checking, if any.

    GX 1.24 gives either ``{"raised_exception": bool, "exception_message": ...}`` or, when a metric
    failed, a mapping of metric ids to such dicts.
    """
    info = entry.get("exception_info") or {}
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message") or "error"
    return None


def _folded(entry: dict[str, Any], missing: set[str | None], mistyped: set[str | None]) -> bool:
    """True for a failed check that only repeats a root cause reported on its own."""
    column = _column(entry)
    if column in missing and _type(entry) != _EXISTS:
        return True
    return column in mistyped and _type(entry) != _TYPE and _exception_message(entry) is not None


def _distinct(values: list[Any], limit: int = _SAMPLE_SIZE) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        value = _json_value(value)
        if value not in seen:
            seen.append(value)
        if len(seen) == limit:
            break
    return seen


def _failure(entry: dict[str, Any], df: pd.DataFrame | None) -> Failure:
    kind, kwargs, column = _type(entry), _kwargs(entry), _column(entry)
    outcome = entry.get("result") or {}
    count = outcome.get("unexpected_count")
    percent = outcome.get("unexpected_percent")
    sample = _distinct(outcome.get("partial_unexpected_list") or [])
    sample_rows = [
        _json_value(i) for i in (outcome.get("partial_unexpected_index_list") or [])[:_SAMPLE_SIZE]
    ]
    rule = _meta(entry).get("rule") or kind
    error = _exception_message(entry)
    rows_word = "row" if count == 1 else "rows"
    if kind == _EXISTS:
        detail = "column is missing"
    elif error is not None:
        detail = f"could not be checked: {' '.join(str(error).split())[:200]}"
    elif kind == _TYPE:
        detail, sample = _type_detail(column, count, sample, df)
    elif kind == _NOT_NULL:
        sample = []
        mostly = kwargs.get("mostly")
        if mostly is not None and mostly < 1:
            share = (percent or 0.0) / 100
            detail = f"{share:.1%} null ({count} {rows_word}), at most {_pct(1 - mostly)} allowed"
        else:
            detail = f"{count} null {rows_word}"
    elif kind == _BETWEEN:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if low is not None and high is not None:
            where = f"outside [{_num(low)}, {_num(high)}]"
        else:
            where = f"below {_num(low)}" if low is not None else f"above {_num(high)}"
        detail = f"{count} {rows_word} {where}"
    elif kind == _IN_SET:
        detail = f"{count} {rows_word} not in the allowed values"
        if sample:
            detail += f", e.g. {', '.join(repr(v) for v in sample[:3])}"
    elif kind == _ROW_COUNT:
        observed = outcome.get("observed_value")
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        expected = f"between {low} and {high}" if high is not None else f"at least {low}"
        detail = f"row count is {observed}, expected {expected}"
    else:
        detail = f"{count} unexpected {rows_word}" if count is not None else "failed"
    return Failure(
        expectation=kind,
        column=column,
        unexpected_count=int(count) if count is not None else None,
        unexpected_percent=float(percent) if percent is not None else None,
        sample=sample,
        rule=rule,
        detail=detail,
        sample_rows=sample_rows,
    )


def _type_detail(
    column: str | None, count: int | None, sample: list[Any], df: pd.DataFrame | None
) -> tuple[str, list[Any]]:
    """Explain a failed numeric-dtype check: the dtype, and which values are not numbers."""
    if df is None or column not in df.columns:
        return ("not a numeric dtype" if count is None else f"{count} values of a non-numeric type"), sample
    import pandas as pd

    series = df[column]
    dtype = str(series.dtype)
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        present = series.dropna()
        numbers = pd.to_numeric(present, errors="coerce")
        bad = present[numbers.isna()]
        if len(bad):
            values = _distinct(bad.head(200).tolist())
            shown = ", ".join(repr(v) for v in values[:3])
            what = "value is not a number" if len(bad) == 1 else "values are not numbers"
            return f"dtype {dtype}: {len(bad)} {what}, e.g. {shown}", values
        return f"dtype {dtype}: the values are numbers stored as text or objects; cast the column", sample
    return f"dtype {dtype}, expected a numeric dtype", sample


def _json_value(value: Any) -> Any:
    """A JSON-safe version of one value from a frame or a GX result."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else (None if math.isnan(value) else str(value))
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        try:
            return _json_value(item())
        except (ValueError, TypeError):
            return str(value)
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)


def _json_safe(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): _json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_json_safe(v) for v in data]
    return _json_value(data)


# HTML -------------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1f2328;background:#fff}
h1{font-size:1.4rem;margin:0 0 .3rem}
.verdict{display:inline-block;padding:.2rem .7rem;border-radius:1rem;font-weight:600;color:#fff}
.pass{background:#1a7f37}.fail{background:#cf222e}.skip{background:#9a6700}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:1rem 0}
dt{color:#57606a}dd{margin:0}
p.summary{max-width:60rem;line-height:1.4}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #d0d7de;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
tr.failed td{background:#fff5f5}
tr.skipped td{background:#fffbeb}
td.status span{display:inline-block;min-width:3.5rem;text-align:center;padding:.1rem .4rem;border-radius:.3rem;
color:#fff;font-size:.8rem;font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em}
.muted{color:#57606a}
"""


def _observed_text(entry: dict[str, Any]) -> str:
    outcome = entry.get("result") or {}
    if "observed_value" in outcome:
        return f"observed: {outcome['observed_value']}"
    if outcome.get("unexpected_count") is not None:
        return f"{outcome['unexpected_count']} unexpected"
    return ""


def _render_html(report: ValidationReport) -> str:
    esc = html.escape
    entries = report.result.get("results", [])
    missing = {_column(e) for e in entries if _type(e) == _EXISTS and not e.get("success")}
    mistyped = {_column(e) for e in entries if _type(e) == _TYPE and not e.get("success")}
    by_key = {(f.expectation, f.column): f for f in report.failed}
    rows_html: list[str] = []

    def row(
        status: str,
        css: str,
        column: str | None,
        rule: str,
        source: str,
        observed: str,
        failure: Failure | None,
    ) -> None:
        count = pct = sample = ""
        if failure is not None:
            count = "" if failure.unexpected_count is None else str(failure.unexpected_count)
            pct = "" if failure.unexpected_percent is None else f" ({failure.unexpected_percent:.2f}%)"
            shown = failure.sample or failure.sample_rows
            label = "" if failure.sample else "rows "
            sample = (label + ", ".join(json.dumps(v) for v in shown)) if shown else ""
        rows_html.append(
            f'<tr class="{ {"pass": "passed", "fail": "failed"}.get(css, "skipped") }">'
            f'<td class="status"><span class="{css}">{esc(status)}</span></td>'
            f"<td><code>{esc(column or '(table)')}</code></td>"
            f'<td>{esc(rule)}<br><span class="muted"><code>{esc(source)}</code></span></td>'
            f"<td>{esc(observed)}</td><td>{esc(count + pct)}</td><td><code>{esc(sample)}</code></td></tr>"
        )

    for entry in entries:
        kind, column = _type(entry), _column(entry)
        meta = _meta(entry)
        rule, source = meta.get("rule") or kind, f"{meta.get('source', '')} · {kind}".strip(" ·")
        if entry.get("success"):
            row("pass", "pass", column, rule, source, _observed_text(entry), None)
        elif _folded(entry, missing, mistyped):
            why = "column is missing" if column in missing else "column is not numeric"
            row("not run", "skip", column, rule, source, why, None)
        else:
            failure = by_key.get((kind, column))
            row(
                "fail",
                "fail",
                column,
                rule,
                source,
                failure.detail if failure else _observed_text(entry),
                failure,
            )
    if not entries:
        for failure in report.failed:
            row("fail", "fail", failure.column, failure.rule, failure.expectation, failure.detail, failure)

    meta = report.result.get("meta") or {}
    run_time = (meta.get("run_id") or {}).get("run_time") or meta.get("validation_time") or ""
    verdict = "PASSED" if report.success else "FAILED"
    facts = [
        ("Pipeline", report.pipeline),
        ("Suite", report.result.get("suite_name") or f"{report.pipeline}_batch"),
        ("Rows", str(report.rows)),
        (
            "Expectations",
            f"{report.evaluated} evaluated, {report.unsuccessful if not report.success else 0} failed",
        ),
    ]
    if run_time:
        facts.append(("Validated at", str(run_time)))
    facts_html = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(verdict)}: data validation of {esc(report.pipeline)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f'<h1>Data validation: {esc(report.pipeline)} <span class="verdict {"pass" if report.success else "fail"}">'
        f"{verdict}</span></h1>"
        f"<dl>{facts_html}</dl>"
        f'<p class="summary">{esc(report.summary())}</p>'
        "<table><thead><tr><th>Result</th><th>Column</th><th>Rule (config field · expectation)</th>"
        "<th>Observed</th><th>Unexpected rows</th><th>Sample</th></tr></thead><tbody>"
        + "".join(rows_html)
        + "</tbody></table></body></html>\n"
    )


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
    batch = next((_kwargs(e).get("batch_id") for e in data["results"] if _kwargs(e).get("batch_id")), _ASSET)
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
