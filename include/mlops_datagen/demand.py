"""Synthetic retail demand: units sold per store, product category and day.

Each row is one day of one product category in one store. A batch dated ``D`` is an extract of the 28 days
ending on ``D`` (rows sampled from that window), so every batch holds every weekday. Units sold follow a
multiplicative demand model plus Poisson-gamma noise::

    mean = store size * category base * weekday * holiday * promotion uplift
           * (price / reference price) ** -elasticity * temperature effect (beverages only)

``holiday`` is a regional public or school holiday at the store (about 6 % of rows); ``temperature_c`` is
missing for about 1 % of rows (gaps in the weather feed).

Drift:
    feature drift of size ``s``: prices rise by ``30 s`` % and temperatures by ``6 s`` degrees; demand reacts
    through the same model (a covariate shift).
    concept drift of size ``c`` in [0, 1]: customers become more price-sensitive (elasticities times
    ``1 + c``), promotions lose their uplift and store S05 loses ``40 c`` % of its demand to a competitor.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from mlops_datagen.seeding import seeded_generator

TARGET = "units_sold"
DEFAULT_ROWS = 3000
WINDOW_DAYS = 28

STORES = ("S01", "S02", "S03", "S04", "S05")
PRODUCT_CATEGORIES = ("grocery", "dairy", "bakery", "beverages", "household", "personal_care")
YES_NO = ("yes", "no")

_STORE_SIZE = np.array([1.4, 1.0, 0.8, 1.2, 0.6])
_STORE_TEMPERATURE_OFFSET = np.array([-3.0, 0.0, 2.0, 5.0, -1.0])
_CATEGORY_BASE_UNITS = np.array([60.0, 45.0, 35.0, 50.0, 20.0, 15.0])
_CATEGORY_REFERENCE_PRICE = np.array([4.0, 3.0, 2.5, 2.0, 8.0, 6.5])
_CATEGORY_ELASTICITY = np.array([1.2, 1.0, 1.5, 1.8, 0.8, 0.9])
#: Monday (0) to Sunday (6).
_WEEKDAY_FACTOR = np.array([0.85, 0.85, 0.9, 0.95, 1.15, 1.4, 1.1])
_PROMOTION_SHARE = 0.15
_PROMOTION_DISCOUNT = 0.8
_PROMOTION_UPLIFT = 1.5
_HOLIDAY_SHARE = 0.06
_HOLIDAY_FACTOR = 1.4
_MISSING_TEMPERATURE_SHARE = 0.01
#: Shape of the gamma noise on the mean: larger is less noisy (the coefficient of variation is 1/sqrt).
_NOISE_SHAPE = 25.0


def make_batch(
    rows: int,
    batch_date: date,
    *,
    rng: np.random.Generator,
    feature_drift: float = 0.0,
    concept_drift: float = 0.0,
) -> pd.DataFrame:
    """One batch: ``rows`` store x category x day observations from the 28 days ending on ``batch_date``.

    Args:
        rows: Number of observations.
        batch_date: Last day of the window the rows are drawn from.
        rng: Source of randomness; the same generator state gives the same batch.
        feature_drift: Size of the price and temperature shift (see the module docstring); 0 for none.
        concept_drift: How far the demand model has changed, in [0, 1].

    Returns:
        The features and ``units_sold``.
    """
    c = min(max(concept_drift, 0.0), 1.0)
    store = rng.integers(0, len(STORES), size=rows)
    category = rng.integers(0, len(PRODUCT_CATEGORIES), size=rows)
    days_back = rng.integers(0, WINDOW_DAYS, size=rows)
    days = [batch_date - timedelta(days=int(back)) for back in days_back]
    day_of_week = np.array([d.weekday() for d in days], dtype="int64")
    month = np.array([d.month for d in days], dtype="int64")
    day_of_year = np.array([d.timetuple().tm_yday for d in days], dtype=float)
    promotion = rng.random(rows) < _PROMOTION_SHARE
    holiday = rng.random(rows) < _HOLIDAY_SHARE
    reference_price = _CATEGORY_REFERENCE_PRICE[category]
    price = (
        reference_price * rng.lognormal(0.0, 0.12, size=rows) * np.where(promotion, _PROMOTION_DISCOUNT, 1.0)
    )
    # Coldest in mid-January, warmest in mid-July.
    seasonal = 12.0 - 10.0 * np.cos(2.0 * np.pi * (day_of_year - 15.0) / 365.0)
    temperature = seasonal + _STORE_TEMPERATURE_OFFSET[store] + rng.normal(0.0, 3.0, size=rows)
    noise = rng.gamma(_NOISE_SHAPE, 1.0 / _NOISE_SHAPE, size=rows)
    temperature_missing = rng.random(rows) < _MISSING_TEMPERATURE_SHARE

    if feature_drift:
        price = price * (1.0 + 0.3 * feature_drift)
        temperature = temperature + 6.0 * feature_drift
    price = np.round(price, 2)
    store_size = _STORE_SIZE[store] * np.where(store == STORES.index("S05"), 1.0 - 0.4 * c, 1.0)
    uplift = np.where(promotion, _PROMOTION_UPLIFT ** (1.0 - c), 1.0)
    elasticity = _CATEGORY_ELASTICITY[category] * (1.0 + c)
    is_beverage = category == PRODUCT_CATEGORIES.index("beverages")
    temperature_effect = np.where(is_beverage, np.exp(0.03 * (temperature - 12.0)), 1.0)
    mean = (
        store_size
        * _CATEGORY_BASE_UNITS[category]
        * _WEEKDAY_FACTOR[day_of_week]
        * np.where(holiday, _HOLIDAY_FACTOR, 1.0)
        * uplift
        * (price / reference_price) ** -elasticity
        * temperature_effect
    )
    units_sold = rng.poisson(mean * noise).astype("int64")
    return pd.DataFrame(
        {
            "store": np.asarray(STORES)[store],
            "product_category": np.asarray(PRODUCT_CATEGORIES)[category],
            "day_of_week": day_of_week,
            "month": month,
            "price": price,
            "promotion": np.where(promotion, "yes", "no"),
            "holiday": np.where(holiday, "yes", "no"),
            "temperature_c": np.where(temperature_missing, np.nan, np.round(temperature, 1)),
            TARGET: units_sold,
        }
    )


#: One frame per date; batch ``i`` depends only on ``seed``, ``i`` and its date.
make_batches = seeded_generator(make_batch, DEFAULT_ROWS, dated=True)
