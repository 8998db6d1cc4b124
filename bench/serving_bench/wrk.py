"""The load generator: wrk runs, one cell (batch size x concurrency) of a server, a quiet machine first.

wrk (C, light on the CPU) posts one JSON body over and over (``bench/serving_wrk.lua``) and prints its counts and
latency percentiles; each cell is measured after a discarded warm-up, with the CPU the server's processes, wrk
and every other process used meanwhile. A cell during which other processes used the cores is tried again.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import machine
from benchlib.tables import ms3
from benchlib.timing import CpuClock

from serving_bench import BATCH_SIZES, LOADS, WRK_TIMEOUT
from serving_bench.servers import Server, batch_counters

WRK_SCRIPT = Path(__file__).resolve().parent.parent / "serving_wrk.lua"


@dataclass
class Cell:
    """One measured load shape of one server: wrk's result, who used the cores, our micro-batches."""

    server: str
    batch: int
    concurrency: int
    result: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # cores used on average: server, wrk, other
    attempt: int = 1
    predict_calls: float | None = None  # ours: model.predict calls during the cell (its micro-batches)
    extra: dict[str, Any] = field(default_factory=dict)  # what a diagnostic server reported

    @property
    def seconds(self) -> float:
        return self.result["duration_us"] / 1e6

    @property
    def requests_per_second(self) -> float:
        return self.result["requests"] / self.seconds

    @property
    def rows_per_second(self) -> float:
        return self.requests_per_second * self.batch

    @property
    def p50(self) -> float:
        return self.result["p50_us"] / 1e6

    @property
    def p99(self) -> float:
        return self.result["p99_us"] / 1e6

    @property
    def rows_per_predict(self) -> float | None:
        if not self.predict_calls:
            return None
        return self.result["requests"] * self.batch / self.predict_calls

    @property
    def errors(self) -> int:
        return int(sum(self.result[k] for k in ("connect", "read", "write", "status", "timeout")))

    def error_detail(self) -> str:
        """The kinds of errors that occurred, with their counts (``none`` when there were none)."""
        kinds = [f"{k} {int(self.result[k])}" for k in ("connect", "read", "write", "status", "timeout")]
        return ", ".join(k for k in kinds if not k.endswith(" 0")) or "none"


@dataclass
class Quiet:
    """How long to wait for the other processes of a shared machine to leave the cores alone."""

    threshold: float  # cores others may use
    wait: float  # seconds to wait for that before each cell
    retries: int  # extra attempts of a cell that shared the cores anyway
    budget: float  # seconds of waiting and retrying left for the whole run


def cores(clock: CpuClock) -> dict[str, float]:
    """Cores used on average during a cell: the server's processes, wrk (waited for), everything else."""
    use = clock.use
    assert use is not None
    return {"server": use.cores(use.group), "wrk": use.cores(use.children), "other": use.cores(use.others)}


def run_wrk(wrk: str, url: str, body_file: Path, concurrency: int, seconds: float) -> dict[str, float]:
    """One wrk run of ``seconds`` posting ``body_file`` to ``url`` at ``concurrency``: what ``serving_wrk.lua``
    reports (counts, errors, latency percentiles in microseconds)."""
    threads, connections = LOADS[concurrency]
    command = [
        wrk,
        threads,
        connections,
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        WRK_TIMEOUT,
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    result = subprocess.run(
        command,
        env={**os.environ, "WRK_BODY_FILE": str(body_file)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("WRK-RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"wrk failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return json.loads(lines[-1].removeprefix("WRK-RESULT "))


def wait_for_quiet(quiet: Quiet, what: str) -> float:
    """Wait (at most ``quiet.wait`` s, within the budget) until the machine uses at most ``quiet.threshold``
    cores; the last reading. The time waited comes off ``quiet.budget``."""
    started = time.perf_counter()
    busy = machine.wait_for_quiet(
        what,
        quiet.threshold,
        max(0.0, min(quiet.wait, quiet.budget)),
        sample=1.0 if quiet.budget <= 0 else 2.0,
        indent="    ",
    )
    quiet.budget -= time.perf_counter() - started
    return busy


def measure_server(
    server: Server,
    wrk: str,
    bodies: dict[int, Path],
    duration: float,
    warmup: float,
    quiet: Quiet,
    shapes: list[tuple[int, int]] | None = None,
    hooks: tuple[Callable[[], None], Callable[[], dict[str, Any]]] | None = None,
) -> list[Cell]:
    """Every cell (batch, concurrency) of one server; a cell that shared the cores is tried again.

    ``hooks``: called just before and just after each measured run; what the second returns is kept in the
    cell's ``extra``.
    """
    url = server.base + server.predict_path
    cells = []
    for batch, concurrency in shapes or [(b, c) for b in BATCH_SIZES for c in LOADS]:
        best: Cell | None = None
        for attempt in range(1 + quiet.retries):
            wait_for_quiet(quiet, f"{server.name} batch {batch} concurrency {concurrency}")
            if warmup > 0:
                run_wrk(wrk, url, bodies[batch], concurrency, warmup)
            before = batch_counters(server)
            if hooks is not None:
                hooks[0]()
            with CpuClock(server.pid) as clock:
                result = run_wrk(wrk, url, bodies[batch], concurrency, duration)
            extra = hooks[1]() if hooks is not None else {}
            after = batch_counters(server)
            cell = Cell(server.name, batch, concurrency, result, cores(clock), attempt + 1, extra=extra)
            if before is not None and after is not None:
                cell.predict_calls = after[1] - before[1]
            per_call = f"  rows/predict {cell.rows_per_predict:.1f}" if cell.rows_per_predict else ""
            print(
                f"  {server.name:6} batch {batch:3} c{concurrency:<2}: {cell.requests_per_second:8.1f} req/s "
                f"{cell.rows_per_second:9.0f} rows/s  p50 {ms3(cell.p50)}  p99 {ms3(cell.p99)}  "
                f"errors {cell.errors}  CPU server {cell.cpu['server']:.2f} wrk {cell.cpu['wrk']:.2f} "
                f"other {cell.cpu['other']:.2f}{per_call}",
                flush=True,
            )
            if best is None or cell.cpu["other"] < best.cpu["other"]:
                best = cell
            if cell.cpu["other"] <= quiet.threshold:
                break
            if quiet.budget <= 0:
                print("    (no time left for retries: --quiet-budget)", flush=True)
                break
            quiet.budget -= cell.seconds + warmup
        assert best is not None
        cells.append(best)
    return cells
