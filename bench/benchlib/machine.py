"""The machine a benchmark ran on, and how busy its cores are.

Facts come from psutil (cores, memory, load average, CPU time of the whole machine) and the standard library
(OS, Python, package versions). The CPU's model name is the one fact psutil does not give: it is read from
``/proc/cpuinfo`` (Linux), with ``platform.processor()`` as the fallback elsewhere.
"""

from __future__ import annotations

import contextlib
import platform
import time
from importlib import metadata
from pathlib import Path

import psutil


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s ``model name``), or ``platform.processor()``, or ``unknown``."""
    with contextlib.suppress(OSError), Path("/proc/cpuinfo").open(encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_facts(packages: tuple[str, ...] = ()) -> dict[str, str]:
    """CPU model, logical cores, memory, OS, Python, and the version of each of ``packages``."""
    facts = {
        "CPU": cpu_model(),
        "Cores (logical)": str(psutil.cpu_count(logical=True)),
        "Memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }
    for package in packages:
        try:
            facts[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    return facts


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``0.12 / 0.34 / 0.56``."""
    return " / ".join(f"{value:.2f}" for value in psutil.getloadavg())


def busy_seconds() -> float:
    """CPU seconds all cores spent working since boot (idle, I/O wait and time stolen by the hypervisor excluded)."""
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def busy_cores(seconds: float = 2.0) -> float:
    """Cores in use on the whole machine, on average over the next ``seconds``."""
    before, started = busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    return (busy_seconds() - before) / (time.perf_counter() - started)


def wait_for_quiet(
    what: str, threshold: float, wait: float, *, sample: float = 2.0, indent: str = "  "
) -> float:
    """Wait (at most ``wait`` s) until the machine uses at most ``threshold`` cores; the last reading.

    Each reading averages ``sample`` seconds, so at least one is taken even when ``wait`` is 0. What it
    waits for, and a reading still above the threshold when the time is up, are printed (``indent`` first).
    """
    deadline = time.perf_counter() + wait
    announced = False
    while True:
        busy = busy_cores(sample)
        if busy <= threshold or time.perf_counter() >= deadline:
            if busy > threshold:
                print(f"{indent}(still {busy:.2f} cores busy; measuring {what} anyway)", flush=True)
            return busy
        if not announced:
            print(
                f"{indent}waiting for a quiet machine before {what} ({busy:.2f} cores busy) ...", flush=True
            )
            announced = True
