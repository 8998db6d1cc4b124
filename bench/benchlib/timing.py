"""Timing helpers: repeated timings, the median of a call, and who used the cores during a measurement."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchlib.machine import busy_seconds
from benchlib.processes import cpu_seconds, group_cpu_seconds


@dataclass
class Sample:
    """Repeated timings of one measurement, in seconds."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)


def median_call(function: Callable[[], Any], calls: int, warmup: int = 50) -> float:
    """Median seconds of one call of ``function`` over ``calls`` calls, after ``min(warmup, calls)`` untimed ones."""
    for _ in range(min(warmup, calls)):
        function()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass(frozen=True)
class CpuUse:
    """What a ``CpuClock`` saw between its start and its stop; CPU times in seconds."""

    wall: float
    own: float  # this process, all threads
    children: float  # child processes that ended and were waited for meanwhile (a load generator run)
    group: float  # the live processes of the watched process group (a server and its children)
    others: float  # every other process on the machine

    def cores(self, cpu_seconds: float) -> float:
        """``cpu_seconds`` as cores used on average over the wall time."""
        return cpu_seconds / self.wall if self.wall > 0 else 0.0


class CpuClock:
    """Wall time and CPU time from creation (or ``with``) to ``stop``: this process, its waited-for children,
    process group ``pgid`` if given, and the rest of the machine (from the machine's busy time)."""

    def __init__(self, pgid: int | None = None) -> None:
        self.pgid = pgid
        self.use: CpuUse | None = None
        self.started = time.perf_counter()
        self._busy = busy_seconds()
        self._group = self._group_seconds()
        self._children = cpu_seconds(resource.RUSAGE_CHILDREN)
        self._own = cpu_seconds()

    def _group_seconds(self) -> float:
        return group_cpu_seconds(self.pgid) if self.pgid is not None else 0.0

    def stop(self) -> CpuUse:
        """What was used since the start; also kept in ``use``."""
        wall = time.perf_counter() - self.started
        busy = busy_seconds() - self._busy
        group = self._group_seconds() - self._group
        children = cpu_seconds(resource.RUSAGE_CHILDREN) - self._children
        own = cpu_seconds() - self._own
        self.use = CpuUse(wall, own, children, group, max(0.0, busy - group - children - own))
        return self.use

    def __enter__(self) -> CpuClock:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
