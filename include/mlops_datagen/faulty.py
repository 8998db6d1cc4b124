"""Deliberately faulty models, for showing and testing what the deployment guards catch.

They fit and score like a real model (so they can pass the gate) but misbehave where only the deployment
checks look: :class:`SlowClassifier` answers correctly but slowly (the smoke test's latency budget and the
canary's p99 guard catch it); :class:`GarbageRegressor` returns NaN once deployed-size batches arrive.

Use one through a run's model override, e.g. ``{"estimator": "mlops_datagen.faulty.SlowClassifier",
"params": {"delay_seconds": 2}}``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import LinearRegression, LogisticRegression


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression that sleeps ``delay_seconds`` on every prediction call."""

    def __init__(self, delay_seconds: float = 2.0, C: float = 1.0, max_iter: int = 1000) -> None:  # noqa: N803
        self.delay_seconds = delay_seconds
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> SlowClassifier:  # noqa: N803 (scikit-learn's names)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        time.sleep(self.delay_seconds)
        return self.model_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        time.sleep(self.delay_seconds)
        return self.model_.predict_proba(X)


class SlowFitClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression that sleeps ``fit_seconds`` before fitting: a long training run, for killing a
    worker in the middle of one (tests/integration/test_stack.py). It predicts at full speed."""

    def __init__(self, fit_seconds: float = 20.0, C: float = 1.0, max_iter: int = 1000) -> None:  # noqa: N803
        self.fit_seconds = fit_seconds
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> SlowFitClassifier:  # noqa: N803 (scikit-learn's names)
        time.sleep(self.fit_seconds)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.model_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.model_.predict_proba(X)


class GarbageRegressor(RegressorMixin, BaseEstimator):
    """A linear regression that is honest on calls of at least ``honest_min_rows`` rows (what the gate scores)
    and returns NaN on smaller ones (what live traffic sends): garbage only where the gate cannot see it."""

    def __init__(self, honest_min_rows: int = 50) -> None:
        self.honest_min_rows = honest_min_rows

    def fit(self, X: Any, y: Any) -> GarbageRegressor:  # noqa: N803
        self.model_ = LinearRegression().fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        predictions = self.model_.predict(X)
        if len(predictions) < self.honest_min_rows:
            predictions = np.full(len(predictions), np.nan)
        return predictions
