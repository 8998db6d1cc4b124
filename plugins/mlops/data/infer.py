"""Propose a pipeline's ``features`` and ``expectations`` from a sample batch (``mlops config infer``).

What TFX does with an inferred schema, as a YAML fragment the user reviews and commits: each column's type,
whether it may be null, a range (numeric) or the allowed values (categorical), and a minimum row count. The
rules are judgements, so the output says which rule made each choice and marks the doubtful ones
``review``:

- **types**: text and booleans are categorical; a number column is categorical when it holds whole numbers
  only (an integer dtype, or floats like ``2.0``) with at most :data:`CATEGORY_LIMIT` distinct values (codes
  such as 0..4), else numeric. Dates, empty columns and identifiers (nearly one distinct value per row) are
  left out, commented;
- **ranges**: the sample's minimum and maximum widened by :data:`~mlops.data.baseline.MARGIN` of that span on
  each side (not below 0 for a column with no negative value), rounded outward to three significant digits
  of the span;
- **allowed values**: every value of the sample, in the canonical form validation compares
  (:mod:`mlops.data.canonical`, read as :func:`~mlops.data.reading.read_batch` reads the batch with the
  proposed config), written in their natural YAML form (``3`` for the text ``"3"``, ``true``, strings);
- **nulls**: a column with nulls in the sample is ``nullable: true`` with ``max_null_fraction`` at the
  sample's share plus as much again (at least 5 points, :func:`~mlops.data.baseline.allowed_null_fraction`);
- **row count**: ``min`` is a tenth of the sample's rows, at least the default 50, at most the sample's rows;
- **task** (unless given): classification for a target of text, booleans, or whole numbers with at most
  :data:`CATEGORY_LIMIT` distinct values; regression otherwise.

The fragment holds ``task``, ``target``, ``features`` and ``expectations``; with ``name``, ``data``, ``model``
and ``gate`` added it is a complete config (:meth:`Proposal.complete` checks exactly that), and the sample
it came from passes its validation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlops.config import PipelineConfig, RowCount, parse_config
from mlops.data.baseline import MARGIN, allowed_null_fraction, widened_range
from mlops.data.canonical import canonical_frame
from mlops.data.reading import read_batch
from mlops.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CATEGORY_LIMIT", "ColumnProposal", "Proposal", "infer_config", "infer_file"]

#: A column of whole numbers with at most this many distinct values is proposed as categorical (codes).
CATEGORY_LIMIT = 20
#: The default ``expectations.row_count.min``: the proposed minimum is not below it (unless the sample is).
DEFAULT_MIN_ROWS = RowCount().min
#: A column with more distinct values than this, and more than half as many as it has values, is an identifier.
_IDENTIFIER_VALUES = 50
_INTEGER_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")
#: Placeholders that make the fragment a complete config for the self-check (never printed).
_PLACEHOLDERS: dict[str, Any] = {
    "name": "inferred",
    "data": {"source": "sample.csv"},
    "model": {"estimator": "sklearn.dummy.DummyRegressor"},
    "gate": {"primary_metric": "rmse", "threshold": 1e12},
}
_CLASSIFICATION_PLACEHOLDERS: dict[str, Any] = {
    "model": {"estimator": "sklearn.dummy.DummyClassifier"},
    "gate": {"primary_metric": "accuracy", "threshold": 0.0},
}


@dataclass(frozen=True)
class ColumnProposal:
    """What is proposed for one column of the sample.

    Attributes:
        name: The column.
        type: ``numeric`` or ``categorical``; None for a column left out.
        nullable: Whether the sample has nulls in it.
        rule: Its ``expectations.columns`` entry (``min``/``max``, ``allowed``, ``max_null_fraction``).
        note: Why, when it needs a look (shown as a comment; ``review: ...`` for a judgement).
        left_out: Why the column is not proposed as a feature (None: it is one, or it is the target).
    """

    name: str
    type: str | None
    nullable: bool = False
    rule: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    left_out: str | None = None


@dataclass(frozen=True)
class Proposal:
    """A proposed fragment of a pipeline config, with the reasons for each choice."""

    source: str
    rows: int
    task: str
    task_note: str
    target: ColumnProposal
    columns: list[ColumnProposal]
    min_rows: int

    @property
    def features(self) -> list[ColumnProposal]:
        return [c for c in self.columns if c.left_out is None]

    def fragment(self) -> dict[str, Any]:
        """The fragment as a mapping: ``task``, ``target``, ``features``, ``expectations``."""
        features = []
        for column in self.features:
            entry: dict[str, Any] = {"name": column.name, "type": column.type}
            if column.nullable:
                entry["nullable"] = True
            features.append(entry)
        rules = {c.name: c.rule for c in [*self.features, self.target] if c.rule}
        return {
            "task": self.task,
            "target": self.target.name,
            "features": features,
            "expectations": {"row_count": {"min": self.min_rows}, "columns": rules},
        }

    def complete(self, **fields: Any) -> PipelineConfig:
        """The fragment with ``name``, ``data``, ``model`` and ``gate`` (placeholders unless given), validated.

        Raises:
            ConfigError: The completed config is not valid (for the fragment alone: a bug of this module).
        """
        placeholders = {
            **_PLACEHOLDERS,
            **(_CLASSIFICATION_PLACEHOLDERS if self.task == "classification" else {}),
        }
        return parse_config({**placeholders, **self.fragment(), **fields})

    def to_yaml(self) -> str:
        """The fragment as commented YAML: the rules used, then each choice with its reason where needed."""
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        margin = f"{MARGIN:.0%}"
        lines = [
            f"# Proposed by `mlops config infer` from {self.source} ({self.rows} rows) on {today}.",
            "# Review every line (those marked `review` first), add name, data, model and gate",
            "# (docs/pipeline-config.md), check with `mlops config check`, and commit.",
            "# Rules used:",
            f"#   - type: text and booleans are categorical; whole numbers with at most {CATEGORY_LIMIT} distinct",
            "#     values are categorical (codes: a judgement, marked review); other numbers are numeric;",
            f"#   - min/max: the sample's range widened by {margin} of its span on each side (not below 0",
            "#     for a column with no negative value), rounded outward;",
            "#   - allowed: every value in the sample; a column with nulls is nullable, with max_null_fraction",
            "#     at the sample's share of nulls plus as much again (at least 5 points);",
            f"#   - row_count.min: a tenth of the sample's rows, at least {DEFAULT_MIN_ROWS}, at most the sample's rows.",
            "# With rules under expectations.columns, no baseline is recorded: these rules are the contract.",
            _line(_block({"task": self.task}), self.task_note),
            _line(_block({"target": self.target.name}), self.target.note),
            "features:",
        ]
        for column in self.columns:
            entry: dict[str, Any] = {"name": column.name, "type": column.type}
            if column.nullable:
                entry["nullable"] = True
            if column.left_out is not None:
                lines.append(f"  # - {_flow({'name': column.name})}  # left out: {column.left_out}")
            else:
                lines.append(_line(f"  - {_flow(entry)}", column.note))
        lines += [
            "expectations:",
            _line(f"  row_count: {_flow({'min': self.min_rows})}", f"the sample has {self.rows} rows"),
            "  columns:",
        ]
        for column in [*self.features, self.target]:
            if column.rule:
                lines.append(f"    {_key(column.name)}: {_flow(column.rule)}")
        text = "\n".join(lines) + "\n"
        if yaml.safe_load(text) != self.fragment():  # the comments and quoting must not change a value
            raise AssertionError("the YAML rendering of the proposal does not read back as the proposal")
        return text


# YAML -------------------------------------------------------------------------------------------------------
def _flow(value: Any) -> str:
    return str(
        yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1_000_000, allow_unicode=True)
    ).strip()


def _block(value: dict[str, Any]) -> str:
    return str(yaml.safe_dump(value, sort_keys=False, width=1_000_000, allow_unicode=True)).strip()


def _key(name: str) -> str:
    return _flow({name: 0})[1:-1].rsplit(":", 1)[0]


def _line(text: str, note: str) -> str:
    return f"{text}  # {note}" if note else text


# Inference --------------------------------------------------------------------------------------------------
def _python(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) and type(value).__module__ == "numpy" else value


def _whole_numbers(column: pd.Series) -> bool:
    from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype

    if is_bool_dtype(column.dtype):
        return False
    if is_integer_dtype(column.dtype):
        return True
    present = column.dropna()
    return bool(is_float_dtype(column.dtype) and len(present) and (present == present.round()).all())


def _kind(column: pd.Series) -> tuple[str | None, str, str | None]:
    """(type, note, left out because) of one raw column (as pandas read it, before any config)."""
    from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

    present = column.dropna()
    distinct = int(present.nunique())
    if present.empty:
        return None, "", "no values in the sample"
    if is_datetime64_any_dtype(column.dtype):
        return None, "", "a date or time (not supported as a feature: derive numbers from it)"
    if is_bool_dtype(column.dtype):
        return "categorical", "", None
    identifier = distinct > _IDENTIFIER_VALUES and distinct > 0.5 * len(present)
    if not is_numeric_dtype(column.dtype):
        if identifier:
            return (
                None,
                "",
                f"{distinct} distinct values in {len(present)} rows: an identifier, not a category",
            )
        return "categorical", "", None
    if _whole_numbers(column) and distinct <= CATEGORY_LIMIT:
        shown = ", ".join(str(int(v)) for v in sorted(present.unique())[:6])
        more = ", ..." if distinct > 6 else ""
        return (
            "categorical",
            f"review: whole numbers with {distinct} distinct values ({shown}{more}), taken as codes; declare "
            "it numeric if the order or size of the numbers means something",
            None,
        )
    consecutive = _whole_numbers(column) and float(present.max()) - float(present.min()) + 1 == distinct
    if consecutive and distinct == len(present) and distinct > _IDENTIFIER_VALUES:
        return (
            None,
            "",
            f"{distinct} consecutive whole numbers in {len(present)} rows: a row id, not a feature",
        )
    return "numeric", "", None


def _task(column: pd.Series) -> tuple[str, str]:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    distinct = int(column.dropna().nunique())
    if is_bool_dtype(column.dtype) or not is_numeric_dtype(column.dtype):
        return "classification", f"inferred: the target holds labels ({distinct} distinct)"
    if _whole_numbers(column) and distinct <= CATEGORY_LIMIT:
        return (
            "classification",
            f"inferred: the target holds {distinct} distinct whole numbers (classes); review",
        )
    return "regression", f"inferred: the target holds {distinct} distinct numbers"


def _nice(value: float, step: float, up: bool) -> float | int:
    rounded = (math.ceil if up else math.floor)(value / step - (1e-9 if up else -1e-9)) * step
    digits = max(0, -math.floor(math.log10(step)))
    number = round(rounded, digits)
    return int(number) if float(number).is_integer() else number


def _range_rule(column: pd.Series) -> dict[str, Any]:
    present = column.dropna()
    seen_min, seen_max = float(present.min()), float(present.max())
    low, high = widened_range(seen_min, seen_max)
    step = 10.0 ** (math.floor(math.log10(high - low)) - 2)
    rule: dict[str, Any] = {"min": _nice(low, step, up=False), "max": _nice(high, step, up=True)}
    if seen_min >= 0 > rule["min"]:
        rule["min"] = 0
    return rule


def _natural(text: str) -> Any:
    """A canonical category text in its natural YAML form: ``"3"`` as 3, ``"true"`` as true, else the text."""
    if _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def _null_rule(column: pd.Series) -> dict[str, Any]:
    share = float(column.isna().mean())
    if share == 0:
        return {}
    allowed = math.ceil(allowed_null_fraction(share) * 100) / 100
    return {} if allowed >= 1 else {"max_null_fraction": allowed}


def infer_config(
    raw: pd.DataFrame,
    target: str,
    task: str | None = None,
    *,
    source: str = "the sample",
    typed: Callable[[PipelineConfig], pd.DataFrame] | None = None,
) -> Proposal:
    """Propose ``task``, ``target``, ``features`` and ``expectations`` for batches like ``raw``.

    Args:
        raw: The sample batch as pandas read it (no config yet).
        target: The column to predict.
        task: ``classification`` or ``regression``; None: inferred from the target (see the module docstring).
        source: Where the sample came from (for the comments).
        typed: How to read the sample again with a config (in canonical dtypes); default
            :func:`~mlops.data.canonical.canonical_frame` of ``raw``. :func:`infer_file` re-reads the file
            with :func:`~mlops.data.reading.read_batch`, as validation does.

    Returns:
        The proposal; ``to_yaml()`` is what ``mlops config infer`` prints.

    Raises:
        DataValidationError: The target is not a column of the sample, has no values, or is not numeric for
            ``task: regression``.
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    columns = [str(c) for c in raw.columns]
    if target not in columns:
        raise DataValidationError(
            f"{source}: the target column {target!r} is not in the sample; its columns: {', '.join(columns)}"
        )
    if raw[target].dropna().empty:
        raise DataValidationError(f"{source}: the target column {target!r} has no values")
    task_note = "given"
    if task is None:
        task, task_note = _task(raw[target])
    elif task == "regression" and (
        is_bool_dtype(raw[target].dtype) or not is_numeric_dtype(raw[target].dtype)
    ):
        raise DataValidationError(
            f"{source}: task regression needs a numeric target, and {target!r} has dtype {raw[target].dtype}"
        )
    kinds = {name: _kind(raw[name]) for name in columns if name != target}
    if not any(kind for kind, _, _ in kinds.values()):
        raise DataValidationError(f"{source}: no column besides the target can be a feature")
    draft = _draft(kinds, target, task)
    frame = typed(draft) if typed is not None else canonical_frame(raw, draft)

    proposed = []
    for name, (kind, note, left_out) in kinds.items():
        column = frame[name]
        if kind is None:
            proposed.append(ColumnProposal(name, None, left_out=left_out))
            continue
        rule = _range_rule(column) if kind == "numeric" else {"allowed": _allowed(column)}
        rule |= _null_rule(column)
        proposed.append(ColumnProposal(name, kind, bool(column.isna().any()), rule, note))
    labels = frame[target]
    target_rule = (
        _range_rule(labels) if task == "regression" else {"allowed": _allowed(labels, natural=False)}
    )
    target_note = ""
    if labels.isna().any():
        target_note = f"review: {int(labels.isna().sum())} rows without a label: a batch with any is rejected"
    rows = len(raw)
    return Proposal(
        source=source,
        rows=rows,
        task=task,
        task_note=task_note,
        target=ColumnProposal(target, None, rule=target_rule, note=target_note),
        columns=proposed,
        min_rows=min(rows, max(DEFAULT_MIN_ROWS, rows // 10)),
    )


def _allowed(column: pd.Series, natural: bool = True) -> list[Any]:
    """Every value of a column, sorted (numbers, then booleans, then text); with ``natural``, canonical
    category texts in their natural YAML form. A classification target's labels are compared as they are."""
    values = [_python(v) for v in column.dropna().unique()]
    if natural:
        values = [_natural(v) if isinstance(v, str) else v for v in values]
    return sorted(values, key=lambda v: (isinstance(v, str), isinstance(v, bool), v))


def _draft(kinds: dict[str, tuple[str | None, str, str | None]], target: str, task: str) -> PipelineConfig:
    """A config with the proposed features and no expectations: how the sample will be read."""
    features = [
        {"name": name, "type": kind, "nullable": True} for name, (kind, _, _) in kinds.items() if kind
    ]
    placeholders = {**_PLACEHOLDERS, **(_CLASSIFICATION_PLACEHOLDERS if task == "classification" else {})}
    return parse_config({**placeholders, "task": task, "target": target, "features": features})


def infer_file(path: str | Path, target: str, task: str | None = None, fmt: str = "auto") -> Proposal:
    """:func:`infer_config` of a local CSV or Parquet file, read as the ``validate`` task reads batches."""
    raw = read_batch(path, fmt)
    return infer_config(
        raw, target, task, source=str(path), typed=lambda config: read_batch(path, fmt, config)
    )
