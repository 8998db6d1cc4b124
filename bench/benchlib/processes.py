"""CPU time and memory of processes: this one, its children, a process group; and running a Python child.

psutil reads the live processes (RSS, CPU time of a group's members). ``getrusage`` gives this process's and
its waited-for children's CPU time to the microsecond and the peak RSS (``ru_maxrss``). Two things psutil has
no call for are done by hand, on Linux only: the peak RSS the kernel keeps (``VmHWM`` in
``/proc/self/status``) and starting that count over (``/proc/self/clear_refs``).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psutil

from benchlib.repo import REPO

MIB = 2**20


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (all threads), or with ``RUSAGE_CHILDREN`` of the children
    it has waited for."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def rss_mib() -> float:
    """This process's resident memory now."""
    rss: int = psutil.Process().memory_info().rss
    return rss / MIB


def peak_mib() -> float:
    """This process's peak resident memory so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hwm_mib() -> float:
    """The peak resident memory the kernel keeps for this process (``VmHWM``); NaN where there is none."""
    try:
        with Path("/proc/self/status").open(encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def reset_peak() -> bool:
    """Start the peak-RSS count over from the current RSS (Linux: ``5`` into ``/proc/self/clear_refs``).

    ``ru_maxrss`` then reports the peak since this call, or the parent's RSS when this process was started if
    that is larger (the kernel keeps it); the parent stays small, so it never is. False when it did not work.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return peak_mib() <= rss_mib() + 16


def group_members(pgid: int) -> list[psutil.Process]:
    """The live processes of process group ``pgid`` (a server started in its own session, and its children)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process)
        except OSError:  # gone meanwhile, or not ours to ask about
            continue
    return members


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds used so far by the live processes of group ``pgid``."""
    total = 0.0
    for process in group_members(pgid):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def group_rss_mib(pgid: int) -> float | None:
    """Resident memory of every live process of group ``pgid``; None when none could be read."""
    total, found = 0, False
    for process in group_members(pgid):
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
        found = True
    return total / MIB if found else None


def run_python(
    *args: str, env: Mapping[str, str] | None = None, what: str = "benchmark child", tail: int = 4000
) -> subprocess.CompletedProcess[str]:
    """``python <args>`` (this interpreter) in the checkout, output captured.

    Raises:
        RuntimeError: the child exited with a status other than 0; the end of its stderr is in the message.
    """
    result = subprocess.run(
        [sys.executable, *args],
        env=None if env is None else dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stderr[-tail:]}")
    return result
