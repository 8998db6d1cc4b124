"""Reading a batch file into a DataFrame: CSV (plain, tab-separated or compressed) or Parquet.

Owns: :func:`read_batch`, its format detection (by extension, then by Parquet's magic bytes) and its errors:
a missing file is a :class:`~mlops.errors.StorageError`; an empty or unparsable one a
:class:`~mlops.errors.DataValidationError` that names the file, the format and where parsing failed (a line,
row or byte position) but quotes nothing of the file, which the caller turns into a report with
:meth:`~mlops.data.report.ValidationReport.for_unreadable`.

This module may be imported at DAG parse time: pandas is imported inside :func:`read_batch`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.data.canonical import canonical_frame, csv_dtypes
from mlops.errors import DataValidationError, StorageError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import PipelineConfig

__all__ = ["read_batch"]

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".csv.zst", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def read_batch(path: str | Path, fmt: str = "auto", config: PipelineConfig | None = None) -> pd.DataFrame:
    """Read a local CSV or Parquet batch into a DataFrame.

    Args:
        path: Local file path (an s3:// batch is downloaded to a local path before it comes here).
        fmt: ``"csv"``, ``"parquet"`` or ``"auto"``: from the extension (``.csv``, ``.tsv``, compressed
            ``.csv.gz``..., ``.parquet``, ``.pq``); a file with another extension is taken as Parquet if it
            starts with Parquet's magic bytes, else as CSV.
        config: The pipeline's config: its categorical features are read from a CSV as text, and the
            declared columns come back in their canonical dtypes (:mod:`mlops.data.canonical`).

    Returns:
        The batch, with the dtypes pandas infers (CSV) or stores (Parquet), canonical with ``config``.

    Raises:
        StorageError: The file does not exist or cannot be opened.
        DataValidationError: The file is empty (0 bytes, no header, or a header and no rows) or cannot be
            parsed; the message names the file and where parsing failed, and quotes nothing of its content.
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
                path,
                sep="\t" if path.name.lower().endswith(".tsv") else ",",
                low_memory=False,
                dtype=csv_dtypes(config) if config is not None else None,
            )
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path}: the batch file has no header and no rows") from None
    except (ValueError, OSError) as exc:
        # pandas' ParserError, UnicodeDecodeError and pyarrow's ArrowInvalid are all ValueErrors.
        raise DataValidationError(
            f"{path}: cannot parse the batch file as {kind.upper()}: {_where_parsing_failed(exc)}"
        ) from None
    if frame.empty:  # its header is not quoted: it may be the first line of a file that is no table at all
        raise DataValidationError(
            f"{path}: the batch file has no rows (a header of {len(frame.columns)} columns)"
        )
    return canonical_frame(frame, config) if config is not None else frame


#: What a parser's message may be reduced to: fixed words and numbers, never a value or a line of the file.
_SAFE_PARSER_MESSAGES = (
    (re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)"), "expected {} fields in line {}, saw {}"),
    (re.compile(r"EOF inside string starting at row (\d+)"), "a quoted field opened in row {} never closes"),
    (re.compile(r"magic bytes not found"), "no Parquet magic bytes (not a Parquet file)"),
    (re.compile(r"\b(line|row|position) (\d+)"), "at {} {}"),
)


def _where_parsing_failed(exc: BaseException) -> str:
    """Where and how a file failed to parse (the error's type, a line, row or byte position), without quoting
    the parser: its message can hold the file's content (a line, a value), which would end up in the task
    log, the alert and the validation report."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not {exc.encoding} text (byte {exc.start})"
    for pattern, said in _SAFE_PARSER_MESSAGES:
        if found := pattern.search(str(exc)):
            return f"{said.format(*found.groups())} ({type(exc).__name__})"
    return f"{type(exc).__name__} (the parser's message is not quoted: it may hold the file's content)"


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    with path.open("rb") as handle:
        return "parquet" if handle.read(4) == b"PAR1" else "csv"
