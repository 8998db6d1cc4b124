"""The report of one batch's validation: what broke, in plain words, and its renderings.

Owns: :class:`Failure` and :class:`ValidationReport`, the reading of a Great Expectations result (a
``to_json_dict()`` dict) into them (which checks failed, which only repeat a missing or mistyped column,
what was observed), the JSON-safe conversion of GX values, and the report's renderings: a one-paragraph
``summary()`` for a task failure, ``to_json()`` for storage and ``to_html()``, a self-contained page
rendered from the ``validation_report.html.j2`` template (:func:`render_report_html`).

Nothing here runs GX or reads data (that is :mod:`mlops.data.validation` and :mod:`mlops.data.reading`):
a stored report can be read back and rendered without great_expectations.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.config.templating import render

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FILE_IS_READABLE", "Failure", "ValidationReport", "render_report_html"]

#: The expectation name of the one failure of a report on a batch that could not be read.
FILE_IS_READABLE = "file_is_readable"
_EXISTS = "expect_column_to_exist"
_MISSING_TARGET = "the target column"
_TYPE = "expect_column_values_to_be_in_type_list"
_NOT_NULL = "expect_column_values_to_not_be_null"
_BETWEEN = "expect_column_values_to_be_between"
_IN_SET = "expect_column_values_to_be_in_set"
_ROW_COUNT = "expect_table_row_count_to_be_between"

_SAMPLE_SIZE = 5
_SUMMARY_ITEMS = 6
_COLUMNS_LISTED = 20


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
        warnings: Broken rules of GX severity ``warning`` (the recorded baseline's checks in warn mode,
            :mod:`mlops.data.baseline`): shown and logged, but the batch passes.
    """

    success: bool
    pipeline: str
    rows: int
    evaluated: int
    failed: list[Failure]
    result: dict[str, Any]
    warnings: list[Failure] = field(default_factory=list)

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
        broken = [e for e in entries if not e.get("success") and not _folded(e, missing, mistyped)]
        failed = [_failure(entry, df) for entry in broken if not _is_warning(entry)]
        warnings = [_failure(entry, df) for entry in broken if _is_warning(entry)]
        rows = len(df) if df is not None else _observed_rows(entries)
        statistics = result.get("statistics", {})
        # Only a broken rule that is not a mere warning fails the batch (GX's own verdict counts them all).
        critical = any(not e.get("success") and not _is_warning(e) for e in entries)
        return cls(
            success=bool(result.get("success")) or (bool(entries) and not critical),
            pipeline=pipeline,
            rows=rows,
            evaluated=int(statistics.get("evaluated_expectations", len(entries))),
            failed=failed,
            result=result,
            warnings=warnings,
        )

    @classmethod
    def for_unreadable(cls, pipeline: str, reason: str) -> ValidationReport:
        """A failed report for a batch file that is empty or cannot be parsed.

        Args:
            pipeline: Pipeline name.
            reason: Why, e.g. the message of the :class:`~mlops.errors.DataValidationError` from
                :func:`~mlops.data.reading.read_batch`.
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
            warnings=[
                Failure(**{k: v for k, v in f.items() if k in names}) for f in data.get("warnings", [])
            ],
        )

    @classmethod
    def from_json(cls, text: str) -> ValidationReport:
        """Rebuild a report from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    # Renderings -----------------------------------------------------------------------------------------
    @property
    def unsuccessful(self) -> int:
        """Expectations that failed, as GX counts them (checks on a missing column included), warnings not."""
        entries = self.result.get("results") or []
        if entries:
            return sum(1 for e in entries if not e.get("success") and not _is_warning(e))
        return int(self.result.get("statistics", {}).get("unsuccessful_expectations", len(self.failed)))

    def summary(self) -> str:
        """One short paragraph for a task failure message.

        Example: ``"2 of 31 expectations failed on 400 rows of credit_default: amount: 120 rows outside
        [0, 50000]; merchant_category: column is missing."``
        """
        if self.result.get("meta", {}).get("unreadable") is not None:
            return f"The batch of {self.pipeline} could not be read: {self.failed[0].detail}"
        if self.success and self.warnings:
            return _warned_summary(self)
        if self.success:
            return f"All {self.evaluated} expectations passed on {self.rows} rows of {self.pipeline}."
        # A missing target first: nothing can be trained or checked against it.
        failed = sorted(self.failed, key=lambda f: not _is_missing_target(f))
        items = [
            f.detail if _is_missing_target(f) or not f.column else f"{f.column}: {f.detail}"
            for f in failed[:_SUMMARY_ITEMS]
        ]
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
        return render_report_html(self)


# Turning GX results into words ------------------------------------------------------------------------------
def _type(entry: dict[str, Any]) -> str:
    return entry.get("expectation_config", {}).get("type", "")


def expectation_kwargs(entry: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of one expectation's result entry (GX's JSON form)."""
    return entry.get("expectation_config", {}).get("kwargs", {})


def _column(entry: dict[str, Any]) -> str | None:
    return expectation_kwargs(entry).get("column")


def _meta(entry: dict[str, Any]) -> dict[str, Any]:
    return entry.get("expectation_config", {}).get("meta") or {}


def _is_warning(entry: dict[str, Any]) -> bool:
    """A check of GX severity ``warning``: reported, but it does not fail the batch."""
    return entry.get("expectation_config", {}).get("severity") == "warning"


def _warned_summary(report: ValidationReport) -> str:
    """The summary of a batch that passed with warnings: what was flagged comes first."""
    items = [f"{w.column}: {w.detail}" if w.column else w.detail for w in report.warnings[:_SUMMARY_ITEMS]]
    if len(report.warnings) > _SUMMARY_ITEMS:
        items.append(f"and {len(report.warnings) - _SUMMARY_ITEMS} more (see the full report)")
    count = len(report.warnings)
    return (
        f"Passed with {count} warning{'s' if count != 1 else ''} on {report.rows} rows of {report.pipeline} "
        f"({report.evaluated - count} of {report.evaluated} expectations met): " + "; ".join(items) + "."
    )


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
    kind, kwargs, column = _type(entry), expectation_kwargs(entry), _column(entry)
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
    if kind == _EXISTS and _meta(entry).get("source") == "target":
        detail = _missing_target(column, df)
    elif kind == _EXISTS:
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
            detail = f"{share:.1%} null ({count} {rows_word}), at most {format_percent(1 - mostly)} allowed"
        else:
            detail = f"{count} null {rows_word}"
    elif kind == _BETWEEN:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if low is not None and high is not None:
            where = f"outside [{format_number(low)}, {format_number(high)}]"
        else:
            where = f"below {format_number(low)}" if low is not None else f"above {format_number(high)}"
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


def _missing_target(column: str | None, df: pd.DataFrame | None) -> str:
    """The failure of a batch without its target column: says that it is the target, and what the batch has."""
    names = [str(name) for name in (df.columns if df is not None else [])]
    more = f" and {len(names) - _COLUMNS_LISTED} more" if len(names) > _COLUMNS_LISTED else ""
    found = f"; the batch has columns: {', '.join(names[:_COLUMNS_LISTED])}{more}" if names else ""
    return f"{_MISSING_TARGET} {column!r} is missing{found}"


def _is_missing_target(failure: Failure) -> bool:
    return failure.expectation == _EXISTS and failure.detail.startswith(_MISSING_TARGET)


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


def json_safe(data: Any) -> Any:
    """``data`` with every value JSON can hold (NaN, numpy scalars, dates made plain)."""
    if isinstance(data, dict):
        return {str(k): json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return _json_value(data)


# Numbers in words (shared with the suite's rules) -----------------------------------------------------------
def format_number(value: float) -> str:
    """A number as people read it: ``3`` rather than ``3.0``, ``0.25`` rather than ``0.250000``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def format_percent(fraction: float) -> str:
    """A fraction as a percentage (``0.05`` -> ``5%``)."""
    return f"{round(fraction * 100, 4):g}%"


# HTML -------------------------------------------------------------------------------------------------------
def render_report_html(report: ValidationReport) -> str:
    """The report as a self-contained HTML page (template ``validation_report.html.j2``).

    One row per expectation of the GX result, in suite order: passed, failed (with what was observed, the
    unexpected count and a sample), or not run because its column is missing or not numeric. A report with no
    GX result (an unreadable batch) shows its failures instead. Every value is escaped by the template.

    Args:
        report: The report to render.

    Returns:
        The page: inline CSS, no scripts, nothing fetched from the network.
    """
    entries = report.result.get("results", [])
    missing = {_column(e) for e in entries if _type(e) == _EXISTS and not e.get("success")}
    mistyped = {_column(e) for e in entries if _type(e) == _TYPE and not e.get("success")}
    by_key = {(f.expectation, f.column): f for f in [*report.failed, *report.warnings]}
    rows: list[dict[str, str]] = []
    for entry in entries:
        kind, column = _type(entry), _column(entry)
        meta = _meta(entry)
        rule, source = meta.get("rule") or kind, f"{meta.get('source', '')} · {kind}".strip(" ·")
        if entry.get("success"):
            rows.append(_report_row("pass", column, rule, source, _observed_text(entry), None))
        elif _folded(entry, missing, mistyped):
            why = "column is missing" if column in missing else "column is not numeric"
            rows.append(_report_row("skip", column, rule, source, why, None))
        else:
            failure = by_key.get((kind, column))
            observed = failure.detail if failure else _observed_text(entry)
            outcome = "warn" if _is_warning(entry) else "fail"
            rows.append(_report_row(outcome, column, rule, source, observed, failure))
    if not entries:
        rows += [_report_row("fail", f.column, f.rule, f.expectation, f.detail, f) for f in report.failed]

    meta = report.result.get("meta") or {}
    run_time = (meta.get("run_id") or {}).get("run_time") or meta.get("validation_time") or ""
    failed = report.unsuccessful if not report.success else 0
    facts = [
        ("Pipeline", report.pipeline),
        ("Suite", report.result.get("suite_name") or f"{report.pipeline}_batch"),
        ("Rows", str(report.rows)),
        ("Expectations", f"{report.evaluated} evaluated, {failed} failed"),
    ]
    if report.warnings:
        facts.append(("Warnings", f"{len(report.warnings)} (the batch passes; see the rows marked warn)"))
    if run_time:
        facts.append(("Validated at", str(run_time)))
    return render(
        "validation_report.html.j2",
        pipeline=report.pipeline,
        success=report.success,
        warned=bool(report.warnings),
        verdict=("PASSED WITH WARNINGS" if report.warnings else "PASSED") if report.success else "FAILED",
        facts=facts,
        summary=report.summary(),
        rows=rows,
    )


#: A row's outcome -> (the text of its status badge, the class of its table row).
_OUTCOMES = {
    "pass": ("pass", "passed"),
    "fail": ("fail", "failed"),
    "warn": ("warn", "warned"),
    "skip": ("not run", "skipped"),
}


def _report_row(
    outcome: str, column: str | None, rule: str, source: str, observed: str, failure: Failure | None
) -> dict[str, str]:
    """One expectation's row of the HTML report; ``outcome`` is ``pass``, ``fail`` or ``skip``."""
    unexpected = sample = ""
    if failure is not None:
        count = "" if failure.unexpected_count is None else str(failure.unexpected_count)
        percent = "" if failure.unexpected_percent is None else f" ({failure.unexpected_percent:.2f}%)"
        unexpected = count + percent
        shown = failure.sample or failure.sample_rows
        label = "" if failure.sample else "rows "
        sample = (label + ", ".join(json.dumps(v) for v in shown)) if shown else ""
    status, row_class = _OUTCOMES[outcome]
    return {
        "css": outcome,
        "row_class": row_class,
        "status": status,
        "column": column or "(table)",
        "rule": rule,
        "source": source,
        "observed": observed,
        "unexpected": unexpected,
        "sample": sample,
    }


def _observed_text(entry: dict[str, Any]) -> str:
    outcome = entry.get("result") or {}
    if "observed_value" in outcome:
        return f"observed: {outcome['observed_value']}"
    if outcome.get("unexpected_count") is not None:
        return f"{outcome['unexpected_count']} unexpected"
    return ""
