"""``mlops demo`` on a fresh temporary home: its wall time and the steps it printed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib.repo import BIN_DIR, REPO, clean_environ

from dag_parsing_bench import LEAKS

DEMO_STEP = re.compile(r"^\s+(\d+)/(\d+) (.+): triggering (\S+) \.\.\.$")
DEMO_RESULT = re.compile(r"^\s+-> (.+?); champion .*\[(\w+), (\d+) s\]$")
DEMO_PIPELINE = re.compile(r"^== (\S+) ")
DEMO_DB = re.compile(r"metadata database ready \(SQLite, (\d+) s\)")
DEMO_DONE = re.compile(r"^Done in (\d+) s")


@dataclass
class DemoStep:
    """One step of the demo as it printed it: pipeline, ``n/N``, title, outcome, mark, whole seconds."""

    pipeline: str
    number: str
    title: str
    detail: str = ""
    mark: str = ""
    seconds: int | None = None


@dataclass
class DemoResult:
    """How ``mlops demo`` went: its exit code, wall time, the total and database time it printed, its steps."""

    exit_code: int
    wall_seconds: float
    reported_seconds: int | None
    db_seconds: int | None
    steps: list[DemoStep]


def parse_demo_output(text: str) -> tuple[list[DemoStep], int | None, int | None]:
    """The steps, the reported total and the database setup time from the demo's printed story."""
    steps: list[DemoStep] = []
    pipeline = ""
    reported = db_seconds = None
    for line in text.splitlines():
        if match := DEMO_PIPELINE.match(line):
            pipeline = match.group(1)
        elif match := DEMO_STEP.match(line):
            steps.append(DemoStep(pipeline, f"{match.group(1)}/{match.group(2)}", match.group(3)))
        elif (match := DEMO_RESULT.match(line)) and steps:
            steps[-1].detail, steps[-1].mark, steps[-1].seconds = (
                match.group(1),
                match.group(2),
                int(match.group(3)),
            )
        elif match := DEMO_DB.search(line):
            db_seconds = int(match.group(1))
        elif match := DEMO_DONE.match(line):
            reported = int(match.group(1))
    return steps, reported, db_seconds


def measure_demo() -> DemoResult:
    """Run ``mlops demo`` once on a fresh temporary home; the home is kept only when the demo fails."""
    home = Path(tempfile.mkdtemp(prefix="mlops-bench-demo-"))
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN_DIR / "mlops"), "demo", "--home", str(home)],
        env=clean_environ(LEAKS),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    steps, reported, db_seconds = parse_demo_output(result.stdout)
    if result.returncode == 0:
        shutil.rmtree(home, ignore_errors=True)
    else:
        print(f"demo exited {result.returncode}; its state and demo.log are kept in {home}")
        print(result.stdout[-3000:], result.stderr[-3000:])
    return DemoResult(result.returncode, wall, reported, db_seconds, steps)
