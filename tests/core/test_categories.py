"""The canonical text of a category: one spelling per value, whatever JSON, YAML, CSV or Parquet type carried it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops.core.categories import canonical_categories, canonical_category

pytestmark = pytest.mark.unit

scalars = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
    st.none(),
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (3.0, "3"),
        ("3", "3"),
        ("3.0", "3"),
        (np.int64(3), "3"),
        (np.float32(3.0), "3"),
        (-0.0, "0"),
        (2.5, "2.5"),
        ("2.5", "2.5"),
        ("007", "007"),
        ("1e3", "1e3"),
        (True, "true"),
        (np.bool_(False), "false"),
        ("True", "true"),
        ("FALSE", "false"),
        ("yes", "yes"),
        (None, None),
        (math.nan, None),
        (pd.NA, None),
        (np.float64("nan"), None),
    ],
)
def test_each_carrier_of_a_category_has_one_spelling(value: object, text: str | None) -> None:
    assert canonical_category(value) == text


@given(scalars)
def test_the_canonical_text_is_its_own_canonical_text(value: object) -> None:
    text = canonical_category(value)
    assert text is None or canonical_category(text) == text


@given(st.integers(-(10**15), 10**15))
def test_an_integer_code_is_one_category_as_int_float_and_text(code: int) -> None:
    assert canonical_category(code) == canonical_category(float(code)) == canonical_category(str(code))
    assert canonical_category(f"{code}.0") == str(code)


def test_distinct_categories_keep_their_first_seen_order_without_missing_values() -> None:
    assert canonical_categories([2, "1", 2.0, None, True, "true", math.nan]) == ["2", "1", "true"]
