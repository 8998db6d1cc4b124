"""Break a good batch on purpose, the way real feeds break, to show that validation stops it.

Each kind breaks one thing that a pipeline's expectations must catch:

``nulls``
    about 30 % of the rows of a numeric feature become empty (the configs declare it not nullable).
``missing_column``
    a feature column is dropped.
``wrong_type``
    strings like ``n/a-17`` in a numeric column, so that it no longer reads as numbers.
``out_of_range``
    about 10 % of a numeric column set to -1e9 and 1e9, far outside any declared min/max.
``empty``
    a 0-byte file.
``unparseable``
    a file that starts like the CSV but then has a row with too many fields and an unterminated quote:
    ``pandas.read_csv`` raises ``ParserError`` (with the C, python and pyarrow engines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CORRUPTIONS: tuple[str, ...] = (
    "nulls",
    "missing_column",
    "wrong_type",
    "out_of_range",
    "empty",
    "unparseable",
)

#: Target columns of the bundled generators: never chosen as the column to break by default.
KNOWN_TARGETS = frozenset({"diagnosis", "is_fraud", "units_sold"})
NULL_SHARE = 0.3
OUT_OF_RANGE_SHARE = 0.1
OUT_OF_RANGE_VALUE = 1e9
WRONG_TYPE_SHARE = 0.1


def default_column(frame: pd.DataFrame) -> str:
    """The column a corruption breaks when none is named: the first float feature, else the first numeric.

    Raises:
        ValueError: If the frame has no numeric column other than a known target.
    """
    numeric = [
        column
        for column in frame.columns
        if column not in KNOWN_TARGETS and pd.api.types.is_numeric_dtype(frame[column])
    ]
    floats = [column for column in numeric if pd.api.types.is_float_dtype(frame[column])]
    if not numeric:
        raise ValueError(f"no numeric feature column to corrupt; columns: {list(frame.columns)}")
    return (floats or numeric)[0]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _write(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def _pick_rows(n_rows: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``share`` of the rows (at least one row of a non-empty frame)."""
    count = min(n_rows, max(1, round(share * n_rows))) if n_rows else 0
    return np.sort(rng.choice(n_rows, size=count, replace=False))


def _unparseable_bytes(frame: pd.DataFrame) -> bytes:
    header = ",".join(str(column) for column in frame.columns)
    good_rows = frame.head(3).to_csv(index=False, header=False)
    width = len(frame.columns)
    too_wide = ",".join(str(i) for i in range(2 * width + 3))
    unterminated = '"' + ",".join("x" for _ in range(width)) + "\n" + "1," * (width - 1) + "1\n"
    return f"{header}\n{good_rows}{too_wide}\n{unterminated}".encode()


def corrupt_batch(
    src: str | Path, dest: str | Path, kind: str, *, column: str | None = None, seed: int = 0
) -> Path:
    """Write a broken copy of the batch ``src`` to ``dest`` (which may be ``src`` itself).

    Args:
        src: A CSV or Parquet batch (by its suffix).
        dest: Where to write the broken batch; its suffix picks CSV or Parquet for frame-level kinds.
        kind: One of ``CORRUPTIONS``.
        column: The column to break (for ``nulls``, ``missing_column``, ``wrong_type``, ``out_of_range``);
            by default the first float feature (``default_column``).
        seed: Seed of the choice of rows.

    Returns:
        ``dest``.

    Raises:
        ValueError: If ``kind`` is unknown, ``column`` is not in the batch, or ``out_of_range`` is asked of a
            column that is not numeric.
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption '{kind}'; choose one of: {', '.join(CORRUPTIONS)}")
    src, dest = Path(src), Path(dest)
    frame = _read(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        dest.write_bytes(b"")
        return dest
    if kind == "unparseable":
        dest.write_bytes(_unparseable_bytes(frame))
        return dest

    column = column or default_column(frame)
    if column not in frame.columns:
        raise ValueError(f"column '{column}' is not in {src}; columns: {list(frame.columns)}")
    rng = np.random.default_rng(seed)
    if kind == "missing_column":
        frame = frame.drop(columns=[column])
    elif kind == "nulls":
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        frame[column] = frame[column].astype("float64" if numeric else "object")
        frame.loc[_pick_rows(len(frame), NULL_SHARE, rng), column] = np.nan
    elif kind == "wrong_type":
        # A string column throughout, so that Parquet stores it as text too.
        values = frame[column].astype("string")
        for position in _pick_rows(len(frame), WRONG_TYPE_SHARE, rng):
            values.iloc[position] = f"n/a-{position}"
        frame[column] = values
    elif kind == "out_of_range":
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise ValueError(f"out_of_range needs a numeric column; '{column}' in {src} is not numeric")
        frame[column] = frame[column].astype("float64")
        rows = _pick_rows(len(frame), OUT_OF_RANGE_SHARE, rng)
        signs = np.where(np.arange(len(rows)) % 2 == 0, -1.0, 1.0)
        frame.loc[rows, column] = signs * OUT_OF_RANGE_VALUE
    _write(frame, dest)
    return dest
