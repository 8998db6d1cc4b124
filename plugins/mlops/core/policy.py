"""The retraining policy: ``ok``, ``warn``, ``retrain`` or ``no_data`` for a monitoring window (pure).

:func:`decide` takes what a window shows (any object with the :class:`WindowFindings` attributes), the earlier
windows' records and the pipeline's policy, and an injected label counter; it does no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from mlops.config import RetrainPolicy

log = logging.getLogger(__name__)


Status = Literal["ok", "warn", "retrain", "no_data"]


class WindowFindings(Protocol):
    """What :func:`decide` reads of a window's analysis (:class:`mlops.monitoring.analysis.WindowAnalysis`)."""

    @property
    def status(self) -> str: ...
    @property
    def drifted(self) -> bool: ...
    @property
    def concerns(self) -> bool: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def model_version(self) -> int | None: ...

    def reasons(self) -> list[str]: ...


# The decision ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowRecord:
    """What the policy remembers of an earlier window."""

    start: datetime
    end: datetime
    decision: Status
    drifted: bool
    model_version: int | None = None


@dataclass
class Decision:
    status: Status
    reasons: list[str]
    retrain_start: datetime | None = None
    retrain_end: datetime | None = None
    retrain_data: str | None = None
    new_labels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("retrain_start", "retrain_end"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out


def decide(
    analysis: WindowFindings,
    history: Sequence[WindowRecord],
    policy: RetrainPolicy,
    count_labels: Callable[[datetime, datetime], int],
) -> Decision:
    """``ok``, ``warn``, ``retrain`` or ``no_data`` for a window, given the earlier windows (newest first).

    A window that drifts (dataset drift, prediction drift or a performance drop) becomes ``retrain`` only when
    ``policy.consecutive_windows`` windows in a row drifted against the same champion, the last retraining is
    older than the cooldown, fewer than ``max_per_day`` retrainings happened that UTC day, and at least
    ``min_new_labels`` labelled live rows exist in the data the policy would train on (``count_labels(start,
    end)`` counts them). Anything short of that is ``warn``, saying what is missing.
    """
    findings = analysis.reasons()
    if analysis.status == "no_data":
        return Decision("no_data", findings)
    if not analysis.drifted:
        return Decision("warn" if analysis.concerns else "ok", findings or ["no drift, quality as expected"])
    if not policy.enabled:
        return Decision("warn", [*findings, "retraining is disabled (monitoring.retrain.enabled)"])
    streak_start, streak = analysis.start, 1
    retrains = []
    counting = True
    for record in sorted(history, key=lambda r: r.end, reverse=True):
        if record.end > analysis.end:
            continue
        if record.decision == "retrain":
            retrains.append(record.end)
            counting = False
        if not counting or record.decision == "no_data":
            continue
        if record.drifted and record.model_version == analysis.model_version:
            streak += 1
            streak_start = record.start
        else:
            counting = False
    if streak < policy.consecutive_windows:
        return Decision(
            "warn",
            [
                *findings,
                f"drifted window {streak} of the {policy.consecutive_windows} in a row needed to retrain",
            ],
        )
    if retrains and analysis.end - max(retrains) < timedelta(hours=policy.cooldown_hours):
        until = max(retrains) + timedelta(hours=policy.cooldown_hours)
        return Decision(
            "warn", [*findings, f"retraining cooldown until {until.isoformat(timespec='minutes')}"]
        )
    today = [when for when in retrains if when.date() == analysis.end.date()]
    if len(today) >= policy.max_per_day:
        return Decision(
            "warn", [*findings, f"{len(today)} retrainings today already (max_per_day {policy.max_per_day})"]
        )
    if policy.data == "sliding":
        start = analysis.end - timedelta(days=policy.sliding_days)
    else:  # recent, and the live part of 'all'
        start = streak_start
    labels = count_labels(start, analysis.end)
    if labels < policy.min_new_labels:
        return Decision(
            "warn",
            [*findings, f"{labels} labelled live rows to retrain on, {policy.min_new_labels} needed"],
            new_labels=labels,
        )
    return Decision(
        "retrain",
        [
            *findings,
            f"{streak} drifted windows in a row: retrain on {policy.data} data ({labels} labelled rows)",
        ],
        retrain_start=start,
        retrain_end=analysis.end,
        retrain_data=policy.data,
        new_labels=labels,
    )
