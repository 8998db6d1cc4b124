"""The retraining policy: streaks of drifted windows, cooldown, labels needed and the daily cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlops.config import RetrainPolicy
from mlops.core.policy import Decision, WindowRecord, decide
from mlops.monitoring.analysis import WindowAnalysis

pytestmark = pytest.mark.unit
DAY = datetime(2026, 11, 1, tzinfo=UTC)


def _analysis(drifted: bool, day: int, version: int = 1) -> WindowAnalysis:
    analysis = WindowAnalysis("shop", DAY + timedelta(days=day), DAY + timedelta(days=day + 1), version, 500)
    if drifted:
        analysis.performance = {
            "metric": "rmse",
            "live": 9.0,
            "holdout": 2.0,
            "change": 7.0,
            "max_drop": 0.5,
            "labelled_rows": 400,
            "degraded": True,
        }
    return analysis


def _record(analysis: WindowAnalysis, decision: Decision) -> WindowRecord:
    return WindowRecord(
        analysis.start, analysis.end, decision.status, analysis.drifted, analysis.model_version
    )


def _run_policy(drifted: list[bool], policy: RetrainPolicy, labels: int = 1000) -> list[str]:
    history: list[WindowRecord] = []
    statuses = []
    for day, is_drifted in enumerate(drifted):
        analysis = _analysis(is_drifted, day)
        decision = decide(analysis, history, policy, lambda start, end: labels)
        history.insert(0, _record(analysis, decision))
        statuses.append(decision.status)
    return statuses


def test_no_drift_means_ok_and_no_retraining() -> None:
    assert _run_policy([False] * 25, RetrainPolicy()) == ["ok"] * 25


def test_drift_retrains_once_after_the_streak_and_the_cooldown_holds() -> None:
    policy = RetrainPolicy(consecutive_windows=2, cooldown_hours=72, max_per_day=1)
    statuses = _run_policy([False] * 3 + [True] * 6, policy)
    assert statuses[:3] == ["ok"] * 3
    assert statuses[3] == "warn"  # 1 of 2
    assert statuses[4] == "retrain"  # within 2 windows of the onset
    # The model is not replaced in this run (same version): a new streak, then the cooldown, until it ends.
    assert statuses[5:7] == ["warn", "warn"]  # a new streak of 1, then 2 but 48 h < the 72 h cooldown
    assert statuses[7] == "retrain"  # 72 h after the first: the cooldown is over and the drift persists
    assert statuses[8] == "warn"
    assert statuses.count("retrain") == 2


def test_a_new_champion_starts_a_new_streak() -> None:
    history = [WindowRecord(DAY, DAY + timedelta(days=1), "warn", True, model_version=1)]
    decision = decide(_analysis(True, 1, version=2), history, RetrainPolicy(), lambda s, e: 1000)
    assert decision.status == "warn" and "1 of the 2" in decision.reasons[-1]


def test_labels_and_the_daily_cap_are_required() -> None:
    policy = RetrainPolicy(consecutive_windows=1, cooldown_hours=0, min_new_labels=300, max_per_day=1)
    decision = decide(_analysis(True, 0), [], policy, lambda s, e: 120)
    assert decision.status == "warn" and "120 labelled live rows" in decision.reasons[-1]
    first = _analysis(True, 0)
    done = WindowRecord(first.start, first.start + timedelta(hours=1), "retrain", True, 1)
    later = WindowAnalysis("shop", first.start + timedelta(hours=1), first.start + timedelta(hours=2), 1, 500)
    later.performance = first.performance
    decision = decide(later, [done], policy, lambda s, e: 1000)
    assert decision.status == "warn" and "max_per_day 1" in decision.reasons[-1]


def test_retraining_data_ranges() -> None:
    history = [WindowRecord(DAY, DAY + timedelta(days=1), "warn", True, 1)]
    analysis = _analysis(True, 1)
    recent = decide(analysis, history, RetrainPolicy(), lambda s, e: 1000)
    assert recent.status == "retrain" and recent.retrain_start == DAY and recent.retrain_data == "recent"
    sliding = decide(analysis, history, RetrainPolicy(data="sliding", sliding_days=7), lambda s, e: 1000)
    assert sliding.retrain_start == analysis.end - timedelta(days=7)
    off = decide(analysis, history, RetrainPolicy(enabled=False), lambda s, e: 1000)
    assert off.status == "warn" and "disabled" in off.reasons[-1]
