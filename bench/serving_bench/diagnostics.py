"""Where our server's time goes under load: the server again in diagnostic variants, and under cProfile.

Run on the load shapes whose goal was missed (or all of them with ``--profile``): each variant of
``servers.VARIANTS`` changes one thing; the instrumented server reports per-thread CPU, garbage collections and
tracked objects per measured cell, and the ``profile`` variant a cProfile dump of its main thread.
"""

from __future__ import annotations

import json
import pstats
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving_bench import READY_TIMEOUT
from serving_bench.servers import VARIANTS, Server, diagnostic_server
from serving_bench.wrk import Cell, Quiet, measure_server


@dataclass
class Profile:
    """What cProfile saw of our server's main thread under one load shape, summed up."""

    label: str
    batch: int
    concurrency: int
    requests: int
    wall: float
    busy: float  # main-thread seconds not waiting in epoll (inflated by the profiler)
    groups: list[tuple[str, float]]
    top_self: list[tuple[str, float, int]]
    top_ours: list[tuple[str, float, int]]


IDLE_FUNCTIONS = (
    "<method 'poll' of 'select.epoll' objects>",
    "<method 'control' of 'select.kqueue' objects>",
)


def group_of(filename: str, function: str) -> str:
    """A coarse owner of a profiled function: the package, our module, or the kind of builtin."""
    if filename == "~":
        if "numpy" in function:
            return "numpy (C)"
        if "json" in function or "_json" in function:
            return "json (C)"
        if "socket" in function or "transport" in function or "uvloop" in function:
            return "sockets (C)"
        return "other builtins (C)"
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        package = path.split("/site-packages/", 1)[1].split("/", 1)[0]
        return package.removesuffix(".py")
    if "/plugins/mlops/" in path:
        module = path.split("/plugins/", 1)[1].removesuffix(".py").replace("/", ".")
        return module
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 1)[1]
        return "stdlib " + module.split("/", 1)[0].removesuffix(".py")
    return path.rsplit("/", 1)[-1]


def short_thread(name: str) -> str:
    """``mlops-predict-champion_0`` -> ``predict worker``: the thread names our server gives, made short."""
    if name.startswith("mlops-predict-"):
        return "predict worker"
    if name.startswith("inference-log-"):
        return "log writer"
    if name.startswith("mlops-serving-poll-"):
        return "alias poller"
    if name == "MainThread":
        return "event loop"
    return name


def name_of(key: tuple[str, int, str]) -> str:
    """A profiled function's readable name: ``path:line function``, the path from its package on."""
    filename, line, function = key
    if filename == "~":
        return function
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", "/plugins/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line} {function}"


def read_profile(path: Path, label: str, batch: int, concurrency: int, requests: int, wall: float) -> Profile:
    """The busy time, the owners and the top functions of a cProfile dump (time idle in ``epoll`` left out)."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    busy = 0.0
    groups: dict[str, float] = {}
    rows = []
    for key, (_cc, calls, own, cumulative, _callers) in stats.items():
        if key[2] in IDLE_FUNCTIONS:
            continue
        busy += own
        group = group_of(key[0], key[2])
        groups[group] = groups.get(group, 0.0) + own
        rows.append((key, own, cumulative, calls))
    top_self = [(name_of(k), own, calls) for k, own, _c, calls in sorted(rows, key=lambda r: -r[1])[:10]]
    ours = [r for r in rows if "/plugins/mlops/" in r[0][0].replace("\\", "/")]
    top_ours = [(name_of(k), cum, calls) for k, _o, cum, calls in sorted(ours, key=lambda r: -r[2])[:10]]
    ordered = sorted(groups.items(), key=lambda item: -item[1])
    return Profile(label, batch, concurrency, requests, wall, busy, ordered, top_self, top_ours)


def diagnose(
    env: dict[str, str],
    wrk: str,
    bodies: dict[int, Path],
    shapes: list[tuple[int, int]],
    duration: float,
    warmup: float,
    quiet: Quiet,
    work: Path,
) -> tuple[list[Cell], list[Profile]]:
    """Our server again in each diagnostic variant, on the given load shapes (batch, concurrency)."""
    cells: list[Cell] = []
    profiles: list[Profile] = []
    for variant, title in VARIANTS.items():
        prefix = work / f"diagnostic-{variant}"
        server = diagnostic_server(variant, prefix)
        print(f"    our server, {title} ...", flush=True)
        server.start(env, work / f"diagnostic-{variant}.log", READY_TIMEOUT)
        measured = [0]

        def begin(server: Server = server) -> None:
            server.send_signal(signal.SIGUSR1)
            time.sleep(0.1)

        def end(
            server: Server = server, prefix: Path = prefix, measured: list[int] = measured
        ) -> dict[str, Any]:
            server.send_signal(signal.SIGUSR2)
            path = Path(f"{prefix}.{measured[0]}.json")
            deadline = time.perf_counter() + 60
            while not path.exists() and time.perf_counter() < deadline:
                time.sleep(0.1)
            info = json.loads(path.read_text()) if path.exists() else {}
            info["index"] = measured[0]
            measured[0] += 1
            return info

        try:
            found = measure_server(server, wrk, bodies, duration, warmup, quiet, shapes, (begin, end))
        finally:
            server.stop()
        for cell in found:
            if variant == "profile":
                path = Path(f"{prefix}.{cell.extra['index']}.prof")
                if path.exists():
                    label = f"batch {cell.batch}, concurrency {cell.concurrency}"
                    wall = cell.extra.get("wall", cell.seconds)
                    profiles.append(
                        read_profile(
                            path, label, cell.batch, cell.concurrency, int(cell.result["requests"]), wall
                        )
                    )
            else:
                cells.append(cell)
    return cells, profiles
