"""The canonical text of a category: one spelling of a categorical value, whatever carried it.

A categorical feature's values reach the kit in many types: integers from a Parquet file or a JSON request
(``3``), floats from a CSV column that has a missing value (``3.0``), text from a CSV read as text or from the
inference log (``"3"``), booleans from YAML, JSON or a Parquet ``bool`` column (``true``). They must all be
the same category, in validation (``allowed`` values), training, serving, the inference log, monitoring and the
retraining batch. :func:`canonical_category` gives each its one text:

======================================  ===================
value                                   canonical text
======================================  ===================
``3``, ``3.0``, ``numpy.int64(3)``      ``"3"``
``-0.0``, ``0``                         ``"0"``
``2.5``                                 ``"2.5"``
``True``, ``"True"``, ``"TRUE"``        ``"true"``
``"3.0"``, ``"3.00"``                    ``"3"`` (a code written by a CSV writer from a float column)
``"3"``, ``"03"``, ``"2.5"``, ``"a"``    unchanged (text is otherwise never re-read as a number)
``None``, NaN, ``pandas.NA``            ``None`` (missing)
======================================  ===================

Text stays as it is, so codes with leading zeros (``"007"``) survive, with two exceptions for what CSV writers do
to typed columns: ``True``/``TRUE``/``False``/``FALSE`` are folded to lower case (JSON spells booleans
``true``), and an integer written with a zero fraction (``"5.0"``: pandas writes an integer column that has a
missing value as floats) loses it. A category whose text is ``"5.0"`` is therefore the category ``"5"``. Pure Python: no pandas.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable

__all__ = ["BOOLEAN_WORDS", "canonical_categories", "canonical_category", "canonical_text", "is_missing"]

#: The spellings of booleans in text that are folded to ``true``/``false``; every other text is kept as is.
BOOLEAN_WORDS = {"True": "true", "TRUE": "true", "False": "false", "FALSE": "false"}


_ZERO_FRACTION = re.compile(r"([+-]?\d+)\.0+")


def canonical_text(text: str) -> str:
    """The canonical spelling of a category given as text (booleans folded, ``"5.0"`` as ``"5"``)."""
    folded = BOOLEAN_WORDS.get(text)
    if folded is not None:
        return folded
    if "." in text:
        match = _ZERO_FRACTION.fullmatch(text)
        if match is not None:
            digits = match.group(1).lstrip("+")
            return "0" if digits.lstrip("-").strip("0") == "" else digits
    return text


def is_missing(value: object) -> bool:
    """True for None, a float NaN and pandas' NA/NaT (anything that is not equal to itself, or ``NA``)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (str, bool, int)):
        return False
    try:
        return bool(value != value)  # NaN-like scalars (numpy floats, NaT)
    except (TypeError, ValueError):  # pandas.NA: its comparison is NA, whose truth value is ambiguous
        return type(value).__name__ in ("NAType", "NaTType")


def canonical_category(value: object) -> str | None:
    """The canonical text of one categorical value; None when the value is missing.

    Args:
        value: A JSON or pandas/numpy scalar.

    Example:
        >>> canonical_category(3), canonical_category(3.0), canonical_category("3"), canonical_category(True)
        ('3', '3', '3', 'true')
    """
    if is_missing(value):
        return None
    if isinstance(value, str):
        return canonical_text(value)
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):  # numpy.bool_ is not a bool
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        if number.is_integer():
            return str(int(number))
        return repr(number)
    return str(value)


def canonical_categories(values: Iterable[object]) -> list[str]:
    """The distinct canonical texts of ``values`` (missing ones dropped), in first-seen order."""
    seen: dict[str, None] = {}
    for value in values:
        text = canonical_category(value)
        if text is not None:
            seen.setdefault(text, None)
    return list(seen)
