"""Synthetic card transactions with rare fraud (about 2.5 %) that a model can learn from the features.

Each row is one transaction of a card issued in the US. Whether it is fraud is drawn from a logistic rule on
the features (card-not-present, large, at night, far from home, many transactions in a day, a young
account, risky merchants, abroad), so a tree ensemble reaches a ROC AUC above 0.9 while the base rate stays
low. The intercept of the rule is calibrated once on a large reference sample so that the fraud rate is
about 2.5 % without drift.

Drift:
    feature drift of size ``s``: amounts are multiplied by ``1 + s`` and distances by ``1 + 2 s`` (prices rise,
    customers travel); the fraud rule is unchanged, so this is a pure covariate shift.
    concept drift of size ``c`` in [0, 1]: the rule moves towards card-present skimming (small amounts at fuel
    stations and restaurants, near home, by day): ``logit = (1 - c) * old + c * new``, recalibrated to the
    same base rate, so the features look the same but mean something else.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from mlops_datagen.seeding import seeded_generator

TARGET = "is_fraud"
DEFAULT_ROWS = 4000
BASE_RATE = 0.025

MERCHANT_CATEGORIES = ("grocery", "restaurant", "fuel", "electronics", "travel", "digital_goods")
COUNTRIES = ("US", "CA", "MX", "GB", "DE", "FR")
CARD_PRESENT = ("yes", "no")

_MERCHANT_SHARE = np.array([0.26, 0.20, 0.15, 0.09, 0.07, 0.23])
_MERCHANT_TYPICAL_AMOUNT = np.array([45.0, 35.0, 50.0, 180.0, 350.0, 20.0])
_MERCHANT_CARD_PRESENT = np.array([0.9, 0.85, 0.95, 0.6, 0.3, 0.02])
_MERCHANT_RISK = np.array([-0.6, -0.3, 0.0, 0.9, 0.5, 0.7])
_COUNTRY_SHARE = np.array([0.86, 0.04, 0.03, 0.03, 0.02, 0.02])
_MISSING_DISTANCE_SHARE = 0.02
_MAX_DISTANCE_KM = 20000.0
#: Multiplies the log-odds: larger makes fraud easier to tell apart (1.3 gives a ROC AUC near 0.95).
_RULE_STRENGTH = 1.3


def _draw_features(rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Undrifted raw features as arrays (distance without its missing values)."""
    merchant = rng.choice(len(MERCHANT_CATEGORIES), size=rows, p=_MERCHANT_SHARE)
    card_present = rng.random(rows) < _MERCHANT_CARD_PRESENT[merchant]
    country = rng.choice(len(COUNTRIES), size=rows, p=_COUNTRY_SHARE)
    amount = _MERCHANT_TYPICAL_AMOUNT[merchant] * rng.lognormal(0.0, 0.8, size=rows)
    hour = np.floor(rng.normal(14.0, 4.5, size=rows)).astype("int64") % 24
    abroad = country != 0
    distance = rng.lognormal(np.log(8.0), 1.0, size=rows) + abroad * rng.uniform(500.0, 9000.0, size=rows)
    txn_count = rng.poisson(2.5, size=rows)
    account_age = np.ceil(rng.gamma(2.0, 500.0, size=rows)).astype("int64")
    return {
        "amount": np.clip(amount, 0.5, 20000.0),
        "hour": hour,
        "merchant": merchant,
        "country": country,
        "card_present": card_present,
        "distance": np.clip(distance, 0.0, _MAX_DISTANCE_KM),
        "txn_count": txn_count,
        "account_age": account_age,
    }


def _card_not_present_rule(f: dict[str, np.ndarray]) -> np.ndarray:
    """Log-odds of fraud, up to the intercept, before any concept drift."""
    night = (f["hour"] <= 5).astype(float)
    return (
        1.0 * np.log(f["amount"] / 50.0)
        + 1.8 * night
        + 2.0 * ~f["card_present"]
        + 0.45 * np.log1p(f["distance"])
        + 0.45 * f["txn_count"]
        + 1.8 * (f["account_age"] < 60)
        + _MERCHANT_RISK[f["merchant"]]
        + 1.0 * (f["country"] != 0)
    )


def _skimming_rule(f: dict[str, np.ndarray]) -> np.ndarray:
    """Log-odds of fraud, up to the intercept, after full concept drift: card-present skimming."""
    merchant = np.asarray(MERCHANT_CATEGORIES)[f["merchant"]]
    daytime = ((f["hour"] >= 8) & (f["hour"] <= 18)).astype(float)
    return (
        2.5 * f["card_present"]
        + 2.5 * (merchant == "fuel")
        + 1.2 * (merchant == "restaurant")
        - 1.0 * np.log(f["amount"] / 50.0)
        - 0.5 * np.log1p(f["distance"])
        + 1.0 * daytime
        + 0.3 * f["txn_count"]
    )


def _score(f: dict[str, np.ndarray], concept_drift: float) -> np.ndarray:
    c = min(max(concept_drift, 0.0), 1.0)
    score = _card_not_present_rule(f)
    return _RULE_STRENGTH * (score if c == 0.0 else (1.0 - c) * score + c * _skimming_rule(f))


@lru_cache(maxsize=32)
def _intercept(concept_drift: float) -> float:
    """Intercept giving ``BASE_RATE`` fraud on a large fixed reference sample (bisection, deterministic)."""
    score = _score(_draw_features(50_000, np.random.default_rng(20260101)), concept_drift)
    low, high = -40.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2.0
        rate = float(np.mean(1.0 / (1.0 + np.exp(-(middle + score)))))
        low, high = (middle, high) if rate < BASE_RATE else (low, middle)
    return (low + high) / 2.0


def make_batch(
    rows: int, *, rng: np.random.Generator, feature_drift: float = 0.0, concept_drift: float = 0.0
) -> pd.DataFrame:
    """One batch of ``rows`` transactions.

    Args:
        rows: Number of transactions.
        rng: Source of randomness; the same generator state gives the same batch.
        feature_drift: Size of the amount and distance shift (see the module docstring); 0 for none.
        concept_drift: How far the fraud rule has moved to card-present skimming, in [0, 1].

    Returns:
        The features and ``is_fraud`` (0/1).
    """
    f = _draw_features(rows, rng)
    # Labels come from the undrifted features: feature drift changes what is observed, not who commits fraud.
    logit = _intercept(round(float(concept_drift), 6)) + _score(f, concept_drift)
    is_fraud = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    distance_missing = rng.random(rows) < _MISSING_DISTANCE_SHARE
    amount, distance = f["amount"], f["distance"]
    if feature_drift:
        amount = amount * (1.0 + feature_drift)
        distance = np.clip(distance * (1.0 + 2.0 * feature_drift), 0.0, _MAX_DISTANCE_KM)
    return pd.DataFrame(
        {
            "amount": np.round(amount, 2),
            "hour": f["hour"],
            "merchant_category": np.asarray(MERCHANT_CATEGORIES)[f["merchant"]],
            "country": np.asarray(COUNTRIES)[f["country"]],
            "card_present": np.where(f["card_present"], "yes", "no"),
            "distance_from_home_km": np.where(distance_missing, np.nan, np.round(distance, 1)),
            "txn_count_24h": f["txn_count"],
            "account_age_days": f["account_age"],
            TARGET: is_fraud,
        }
    )


#: One frame per date; batch ``i`` depends only on ``seed`` and ``i`` (not on how many are made).
make_batches = seeded_generator(make_batch, DEFAULT_ROWS, dated=False)
