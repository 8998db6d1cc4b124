"""Request bodies of the model server: parse, check against the model's input schema, build the frame.

Accepted bodies (all JSON):

=====================================================  ============================================
``{"records": [{feature: value, ...}, ...]}``          our format, a batch
``{"record": {feature: value, ...}}``                  our format, one row
``[{feature: value, ...}, ...]``                       a bare list of records
``{"dataframe_records": [{...}, ...]}``                MLflow scoring server
``{"dataframe_split": {"columns": [...], "data": [[...]]}}``  MLflow scoring server (``index`` ignored)
``{"inputs": [{...}] | {feature: [values]}}``          MLflow scoring server (records or columns)
``{"instances": [{...}] | {feature: [values]}}``       MLflow scoring server (TF-serving style)
=====================================================  ============================================

The MLflow formats may carry ``"params"``; these models take none, so only an empty object is accepted.

Checks run column by column (one ``set(map(type, column))`` per feature, not a Python object per value) and
produce the dtypes training used (:func:`mlops.ml.training.prepare_frame`): numeric features as float64,
categorical ones as canonical text (:mod:`mlops.core.categories`: ``3``, ``3.0`` and ``"3"`` are ``"3"``) with
NaN for missing. Every problem is an :class:`InputError` whose message names the field and the row: missing
or unknown fields, a wrong type (a string in a numeric feature; a boolean is not a number), a null where the
feature is not nullable, a non-finite number, an empty batch, too many rows, a body too large, malformed JSON
or a wrong shape. None of them can become a 5xx.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlops.core.categories import canonical_category, canonical_text
from mlops.errors import MlopsError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

Kind = Literal["numeric", "categorical"]

#: Top-level keys of a JSON object body, and what each holds.
RECORD_KEYS = ("records", "record")
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances")
#: Signature column types that are numbers; ``string`` is categorical.
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
_NUMBER_TYPES = frozenset({int, float})
_NONE = type(None)
_SHOWN_NAMES = 12


class InputError(MlopsError):
    """A request body the server cannot score: its HTTP status, a message naming the field and the row.

    Args:
        status: 400 (malformed JSON), 413 (body or batch too large) or 422 (anything else).
        message: What is wrong and where.
        field: The feature or top-level key concerned, if any.
        row: The index of the row concerned (0-based, in the order sent), if any.
    """

    code = "INVALID_INPUT"

    def __init__(self, status: int, message: str, field: str | None = None, *, row: int | None = None):
        self.status = status
        self.message = message
        self.field = field
        self.row = row
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        return {"detail": self.message, "code": self.code, "field": self.field, "row": self.row}


@dataclass(frozen=True)
class FeatureSpec:
    """One input column: its name, its kind and whether it may be null."""

    name: str
    kind: Kind
    nullable: bool = False


@dataclass
class ParsedInput:
    """A checked batch: its columns (already in training dtypes) and the rows as sent, for the inference log."""

    schema: InputSchema
    arrays: dict[str, np.ndarray]
    rows: int
    payload_records: list[dict[str, Any]] | None = None
    columns: dict[str, list[Any]] | None = None

    @property
    def frame(self) -> pd.DataFrame:
        return self.schema.frame(self.arrays)

    def canonical_records(self) -> list[dict[str, Any]]:
        """The rows as ``{feature: value}`` in the canonical typing (:mod:`mlops.data.canonical`): numbers as
        floats, categories as their canonical text, missing values None. What the inference log keeps, so that
        monitoring and the retraining batch see the values training saw, however a client spelled them."""
        names = list(self.schema.names)
        columns = [
            [None if value is None or value != value else value for value in self.arrays[name].tolist()]
            for name in names
        ]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def records(self) -> list[dict[str, Any]]:
        """The rows as ``{feature: value as sent}`` (the records themselves when the body held records)."""
        if self.payload_records is not None:
            return self.payload_records
        assert self.columns is not None
        names = list(self.columns)
        return [dict(zip(names, values, strict=True)) for values in zip(*self.columns.values(), strict=True)]


class InputSchema:
    """The columns a model takes, in its order, with their kinds and nullability.

    Args:
        features: The model's input columns, in the order the model was fitted with.
        max_rows: Largest batch one request may send (``serving.max_batch_rows``).
        max_body_bytes: Largest body (``serving.max_body_bytes``).
    """

    def __init__(self, features: Sequence[FeatureSpec], *, max_rows: int, max_body_bytes: int) -> None:
        if not features:
            raise ValueError("an input schema needs at least one feature")
        self.features = tuple(features)
        self.names = tuple(f.name for f in self.features)
        self.name_set = frozenset(self.names)
        self.max_rows = max_rows
        self.max_body_bytes = max_body_bytes
        #: Identifies the columns and checks: two schemas with the same key parse bodies the same way.
        self.key = (self.features, max_rows)
        self._all_numeric = all(f.kind == "numeric" for f in self.features)

    @classmethod
    def from_config(cls, config: PipelineConfig, signature: Any = None) -> InputSchema:
        """The schema of a model of ``config``: columns and kinds from its MLflow signature when it has one
        (the model's truth, even if the config changed since), nullability from the config."""
        declared = {f.name: f for f in config.features}
        columns = _signature_columns(signature)
        if columns is None:
            features = [FeatureSpec(f.name, f.type, f.nullable) for f in config.features]
        else:
            features = []
            for name, column_type in columns:
                feature = declared.get(name)
                if column_type in NUMERIC_TYPES:
                    kind: Kind = "numeric"
                elif column_type == "string":
                    kind = "categorical"
                else:
                    kind = feature.type if feature is not None else "categorical"
                features.append(FeatureSpec(name, kind, feature.nullable if feature is not None else False))
        return cls(
            features, max_rows=config.serving.max_batch_rows, max_body_bytes=config.serving.max_body_bytes
        )

    # Parsing ----------------------------------------------------------------------------------------------
    def parse(self, body: bytes) -> ParsedInput:
        """Check a raw JSON body and build its columns. Raises :class:`InputError`."""
        if len(body) > self.max_body_bytes:
            raise body_too_large(len(body), self.max_body_bytes)
        if not body.strip():
            raise InputError(400, 'the request body is empty; send JSON such as {"records": [{...}]}')
        try:
            payload = json.loads(body)
        except UnicodeDecodeError:
            raise InputError(400, "the request body is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise InputError(
                400, f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        except (ValueError, RecursionError) as exc:  # too deep, or an integer with thousands of digits
            raise InputError(400, f"malformed JSON: {exc}") from None
        return self.parse_payload(payload)

    def parse_payload(self, payload: Any) -> ParsedInput:
        """Check an already decoded JSON value in one of the accepted shapes. Raises :class:`InputError`."""
        if isinstance(payload, list):
            return self._from_records(payload, "(body)")
        if not isinstance(payload, dict):
            raise _wrong_shape(f"the body is a JSON {_json_type(payload)}")
        keys = [k for k in payload if k != "params"]
        if len(keys) != 1:
            found = ", ".join(repr(k) for k in payload) or "none"
            raise _wrong_shape(f"expected exactly one of the keys {_ALL_KEYS}; found {found}")
        key = keys[0]
        if key not in RECORD_KEYS and key not in MLFLOW_KEYS:
            raise _wrong_shape(f"unknown key '{key}'", field=key)
        if "params" in payload:
            params = payload["params"]
            if key in RECORD_KEYS or type(params) is not dict or params:
                raise InputError(
                    422, "this model takes no params; leave 'params' out (or send it as {})", "params"
                )
        value = payload[key]
        if key == "record":
            if not isinstance(value, dict):
                raise _wrong_shape(
                    f"'record' must be an object of feature values, not a {_json_type(value)}", key
                )
            return self._from_records([value], key)
        if key in ("records", "dataframe_records"):
            return self._from_records(value, key)
        if key == "dataframe_split":
            return self._from_split(value)
        # inputs / instances: records, or columns {feature: [values]} (scalars: one row)
        if isinstance(value, list):
            return self._from_records(value, key)
        if isinstance(value, dict):
            return self._from_column_map(value, key)
        raise _wrong_shape(
            f"'{key}' must be a list of records or an object of columns, not a {_json_type(value)}", key
        )

    def _check_rows(self, n: int, where: str) -> None:
        if n == 0:
            raise InputError(422, f"empty batch: '{where}' holds no rows; send at least one", where)
        if n > self.max_rows:
            raise InputError(
                413,
                f"batch too large: {n} rows in one request, the limit is {self.max_rows} "
                "(serving.max_batch_rows); split it into smaller requests",
                where,
            )

    def _from_records(self, records: Any, where: str) -> ParsedInput:
        if not isinstance(records, list):
            raise _wrong_shape(f"'{where}' must be a list of records, not a {_json_type(records)}", where)
        self._check_rows(len(records), where)
        names = self.name_set
        for index, record in enumerate(records):
            # dict_keys compares as a set in C: the usual, valid row costs one comparison.
            if type(record) is not dict or record.keys() != names:
                self._record_problem(record, index)
        columns = {name: [record[name] for record in records] for name in self.names}
        arrays = self._check_columns(columns)
        return ParsedInput(self, arrays, len(records), payload_records=records)

    def _record_problem(self, record: Any, index: int) -> None:
        if not isinstance(record, dict):
            raise InputError(
                422,
                f"row {index} is a JSON {_json_type(record)}; each row must be an object of feature values "
                '(for rows as lists, use {"dataframe_split": {"columns": [...], "data": [[...]]}})',
                row=index,
            )
        self._check_names(record.keys(), f"row {index}", index)

    def _check_names(self, present: Any, where: str, row: int | None) -> None:
        missing = [name for name in self.names if name not in present]
        if missing:
            raise InputError(
                422,
                f"{where}: missing field '{missing[0]}'"
                + (f" (and {len(missing) - 1} more: {_shown(missing[1:])})" if len(missing) > 1 else ""),
                missing[0],
                row=row,
            )
        unknown = [str(name) for name in present if name not in self.name_set]
        if unknown:
            raise InputError(
                422,
                f"{where}: unknown field '{unknown[0]}'; the model takes: {_shown(self.names)}",
                unknown[0],
                row=row,
            )

    def _from_split(self, value: Any) -> ParsedInput:
        where = "dataframe_split"
        if not isinstance(value, dict):
            raise _wrong_shape(f"'{where}' must be an object with 'columns' and 'data'", where)
        extra = set(value) - {"columns", "data", "index"}
        if extra or "columns" not in value or "data" not in value:
            raise _wrong_shape(
                f"'{where}' must hold 'columns' and 'data' (and optionally 'index'); found {sorted(value)}",
                where,
            )
        columns, data = value["columns"], value["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise _wrong_shape(f"'{where}.columns' must be a list of feature names", f"{where}.columns")
        if len(set(columns)) != len(columns):
            duplicate = next(c for i, c in enumerate(columns) if c in columns[:i])
            raise InputError(422, f"'{where}.columns' lists '{duplicate}' twice", duplicate)
        self._check_names(columns, f"'{where}.columns'", None)
        if not isinstance(data, list):
            raise _wrong_shape(f"'{where}.data' must be a list of rows", f"{where}.data")
        self._check_rows(len(data), f"{where}.data")
        width = len(columns)
        for index, row in enumerate(data):
            if type(row) is not list or len(row) != width:
                got = f"{len(row)} values" if isinstance(row, list) else f"a JSON {_json_type(row)}"
                raise InputError(
                    422,
                    f"row {index} of '{where}.data' must be a list of {width} values; got {got}",
                    f"{where}.data",
                    row=index,
                )
        by_name = {name: list(values) for name, values in zip(columns, zip(*data, strict=True), strict=True)}
        ordered = {name: by_name[name] for name in self.names}
        return ParsedInput(self, self._check_columns(ordered), len(data), columns=ordered)

    def _from_column_map(self, value: dict[str, Any], where: str) -> ParsedInput:
        self._check_names(value.keys(), f"'{where}'", None)
        lists = [isinstance(v, list) for v in value.values()]
        if not any(lists):  # all scalars: one row
            value = {name: [v] for name, v in value.items()}
        elif not all(lists):
            name = next(n for n, v in value.items() if not isinstance(v, list))
            raise _wrong_shape(
                f"'{where}' mixes columns (lists) and single values: '{name}' is not a list", name
            )
        lengths = {len(v) for v in value.values()}
        if len(lengths) > 1:
            counts = ", ".join(f"{n}: {len(v)}" for n, v in list(value.items())[:_SHOWN_NAMES])
            raise _wrong_shape(f"the columns of '{where}' differ in length ({counts})", where)
        self._check_rows(lengths.pop(), where)
        ordered = {name: value[name] for name in self.names}
        rows = len(ordered[self.names[0]])
        return ParsedInput(self, self._check_columns(ordered), rows, columns=ordered)

    # Column checks ----------------------------------------------------------------------------------------
    def _check_columns(self, columns: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
        arrays = {}
        for feature in self.features:
            values = columns[feature.name]
            if feature.kind == "numeric":
                arrays[feature.name] = _numeric(feature, values)
            else:
                arrays[feature.name] = _categorical(feature, values)
        return arrays

    def frame(self, arrays: Mapping[str, np.ndarray]) -> pd.DataFrame:
        """The model's input frame: columns in the model's order, in training dtypes."""
        import pandas as pd

        if self._all_numeric:  # one float64 block: ~4x cheaper to build than one column at a time
            block = np.column_stack([arrays[name] for name in self.names])
            return pd.DataFrame(block, columns=list(self.names), copy=False)
        return pd.DataFrame({name: arrays[name] for name in self.names}, copy=False)

    def concat(self, batches: Sequence[ParsedInput]) -> pd.DataFrame:
        """One frame of several checked batches (column by column: far cheaper than ``pd.concat``)."""
        if len(batches) == 1:
            return batches[0].frame
        return self.frame({name: np.concatenate([b.arrays[name] for b in batches]) for name in self.names})

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": f.name, "type": f.kind, "nullable": f.nullable} for f in self.features]

    # OpenAPI ----------------------------------------------------------------------------------------------
    def record_json_schema(self) -> dict[str, Any]:
        """JSON schema of one record (for the OpenAPI description of ``POST /predict``)."""
        properties = {}
        for feature in self.features:
            kind = "number" if feature.kind == "numeric" else "string"
            schema: dict[str, Any] = {"type": [kind, "null"] if feature.nullable else kind}
            properties[feature.name] = schema
        return {
            "type": "object",
            "properties": properties,
            "required": list(self.names),
            "additionalProperties": False,
        }


def _numeric(feature: FeatureSpec, values: list[Any]) -> np.ndarray:
    kinds = set(map(type, values))
    if not kinds <= _NUMBER_TYPES:
        allowed = _NUMBER_TYPES | {_NONE} if feature.nullable else _NUMBER_TYPES
        for index, value in enumerate(values):
            if type(value) not in allowed:
                if value is None:
                    raise _null(feature, index)
                raise InputError(
                    422,
                    f"row {index}, field '{feature.name}': expected a number, got {_describe(value)}",
                    feature.name,
                    row=index,
                )
    try:
        array = np.array(values, dtype=np.float64)
    except OverflowError:
        index = next(i for i, v in enumerate(values) if isinstance(v, int) and abs(v) > 1.7e308)
        raise InputError(
            422,
            f"row {index}, field '{feature.name}': the number is too large for a float64",
            feature.name,
            row=index,
        ) from None
    finite = np.isfinite(array)
    if not finite.all():
        for index in np.flatnonzero(~finite):
            value = array[index]
            if math.isnan(value):
                if not feature.nullable:
                    raise _null(feature, int(index))
            else:
                raise InputError(
                    422,
                    f"row {index}, field '{feature.name}': {value} is not a finite number",
                    feature.name,
                    row=int(index),
                )
    return array


def _categorical(feature: FeatureSpec, values: list[Any]) -> np.ndarray:
    """Canonical text (:func:`mlops.core.categories.canonical_category`): ``3``, ``3.0`` and ``"3"`` are the
    category ``"3"``, ``true`` and ``"True"`` are ``"true"``, as training read them from a batch file."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return np.array([canonical_text(value) for value in values], dtype=object)
    converted = list(values)
    for index, value in enumerate(values):
        kind = type(value)
        if value is None or (kind is float and math.isnan(value)):
            if not feature.nullable:
                raise _null(feature, index)
            converted[index] = math.nan
        elif kind is str or kind is int or kind is float or kind is bool:
            converted[index] = canonical_category(value)
        else:
            raise InputError(
                422,
                f"row {index}, field '{feature.name}': expected a string (a category), got {_describe(value)}",
                feature.name,
                row=index,
            )
    return np.array(converted, dtype=object)


def _signature_columns(signature: Any) -> list[tuple[str, str]] | None:
    """``[(name, type)]`` of a column-based MLflow signature; None without one (or for a tensor signature)."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None:
        return None
    try:
        spec = inputs.to_dict()
    except Exception:
        return None
    columns = [(c.get("name"), c.get("type")) for c in spec]
    if not columns or any(not name or c_type is None for name, c_type in columns):
        return None
    return [(str(name), str(c_type)) for name, c_type in columns]


def body_too_large(size: int | None, limit: int, setting: str = "serving.max_body_bytes") -> InputError:
    """413 for a body of ``size`` bytes (None: a body sent without Content-Length, stopped past the limit)."""
    got = f"{size} bytes" if size is not None else f"over {limit} bytes"
    return InputError(413, f"request body too large: {got}, the limit is {limit} bytes ({setting})")


_ALL_KEYS = ", ".join(f"'{k}'" for k in (*RECORD_KEYS, *MLFLOW_KEYS))


def _wrong_shape(problem: str, field: str | None = None) -> InputError:
    return InputError(
        422,
        f'wrong shape: {problem}. Send {{"records": [{{feature: value, ...}}]}}, {{"record": {{...}}}}, a list '
        "of records, or an MLflow body ('dataframe_split', 'dataframe_records', 'inputs', 'instances')",
        field,
    )


def _null(feature: FeatureSpec, index: int) -> InputError:
    return InputError(
        422,
        f"row {index}, field '{feature.name}': null, but the feature is not nullable",
        feature.name,
        row=index,
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _describe(value: Any) -> str:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"a {_json_type(value)} ({shown})"


def _shown(names: Sequence[str]) -> str:
    listed = ", ".join(names[:_SHOWN_NAMES])
    return listed + (f", ... ({len(names)} in all)" if len(names) > _SHOWN_NAMES else "")
