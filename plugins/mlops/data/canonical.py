"""One typing of every feature, end to end, derived from the pipeline config.

Every place that holds a feature's values (a CSV or Parquet batch, validation, the training frame and the
model's signature, the server's parsed input, the inference log read back, the monitoring window and its
reference, the retraining batch) sees the same dtype, and ``allowed`` values compare in the same form:

- a ``categorical`` feature is text (``object`` dtype), each value spelled by
  :func:`mlops.core.categories.canonical_category` (``3``, ``3.0`` and ``"3"`` are ``"3"``; ``True`` and
  ``"True"`` are ``"true"``; ``"007"`` stays ``"007"``), missing values NaN;
- a ``numeric`` feature is float64 (integers, nullable integers and floats; missing values NaN). A column of
  another dtype (text, booleans) is left as it is, so validation names it ("must have a numeric dtype")
  instead of a conversion error elsewhere;
- a classification target keeps its labels, with integral floats and nullable integers as int64 (a CSV label
  column with a blank is read as float; the model's classes must not become ``1.0``).

CSV batches are read with their categorical columns as text (:func:`csv_dtypes`), so codes with leading
zeros survive and nothing is re-parsed. Calling these functions twice changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.core.categories import canonical_category

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

__all__ = ["canonical_column", "canonical_frame", "csv_dtypes", "typed_features"]


def csv_dtypes(config: PipelineConfig) -> dict[str, type]:
    """``dtype=`` for ``pandas.read_csv``: every categorical feature read as text."""
    return {name: str for name in config.categorical_features}


def canonical_column(column: pd.Series) -> pd.Series:
    """A categorical column as canonical text (object dtype; missing values NaN), index kept.

    Works on the distinct values (``pandas.factorize``), so a million rows of a few categories cost a few
    Python calls.
    """
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    texts = np.array([canonical_category(value) for value in uniques] + [np.nan], dtype=object)
    mapped = texts[codes]  # the sentinel -1 picks the trailing NaN
    mapped[pd.isna(mapped)] = np.nan  # a unique value that is missing-like (pandas.NA in an object column)
    return pd.Series(mapped, index=column.index, name=column.name, dtype=object)


def _numeric(column: pd.Series) -> pd.Series:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if is_bool_dtype(column.dtype) or not is_numeric_dtype(column.dtype):
        return column  # validation reports it; converting would hide the mistake
    return column.astype("float64")


def _labels(column: pd.Series) -> pd.Series:
    from pandas.api.types import is_float_dtype, is_integer_dtype

    if is_integer_dtype(column.dtype) and column.notna().all():
        return column.astype("int64")
    if is_float_dtype(column.dtype) and column.notna().all() and (column == column.round()).all():
        return column.astype("int64")
    return column


def canonical_frame(frame: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """A copy of ``frame`` with its declared columns in their canonical dtypes; other columns untouched.

    Columns the config declares but the frame lacks stay absent (validation reports them).
    """
    out = frame.copy(deep=False)
    for feature in config.features:
        if feature.name not in out.columns:
            continue
        column = out[feature.name]
        out[feature.name] = canonical_column(column) if feature.type == "categorical" else _numeric(column)
    if config.task == "classification" and config.target in out.columns:
        out[config.target] = _labels(out[config.target])
    return out


def typed_features(frame: pd.DataFrame, config: PipelineConfig, *, coerce: bool = False) -> pd.DataFrame:
    """The declared features only, in config order and canonical dtypes.

    Args:
        coerce: What a numeric feature that is not numeric becomes. False (training, scoring): ``ValueError``
            naming it. True (live rows read back from the inference log, which the server already checked):
            NaN where a value is not a number.
    """
    import pandas as pd
    from pandas.api.types import is_bool_dtype

    out = pd.DataFrame(index=frame.index)
    for feature in config.features:
        column = frame[feature.name]
        if feature.type == "categorical":
            out[feature.name] = canonical_column(column)
        elif coerce:
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif is_bool_dtype(column.dtype):
            raise ValueError(
                f"feature '{feature.name}' holds booleans but is declared numeric; declare it categorical"
            )
        else:
            try:
                out[feature.name] = pd.to_numeric(column, errors="raise").astype("float64")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"feature '{feature.name}' is declared numeric but holds {exc}") from None
    return out
