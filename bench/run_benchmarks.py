"""Benchmarks of the MLOps kit on this machine, written to section ``dag-parsing`` of ``docs/benchmarks.md``.

    .venv/bin/python bench/run_benchmarks.py [--skip-demo] [--repeat N] [--out FILE]

1. Import time of ``dags/mlops_training.py`` (all pipelines) against an empty DAG file, with and without the
   ``import airflow.sdk`` both pay, plus where our extra time goes (``-X importtime`` and a phase breakdown).
2. Time to parse ``dags/`` the way Airflow does (``DagBag``), against a folder holding only the empty DAG file.
3. Wall time of ``mlops demo`` on a fresh home, with the per-step times it prints.

Only the section between ``<!-- BEGIN dag-parsing -->`` and ``<!-- END dag-parsing -->`` is rewritten; the rest
of the file (``bench/serving_benchmark.py`` owns section ``serving``) is kept.

Every measurement runs in a fresh interpreter (nothing cached in-process) with the environment that
``mlops env --home <temp dir>`` prints; one discarded warm-up run per kind fills the bytecode and OS caches.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from benchlib.machine import load_average, machine_facts
from benchlib.processes import run_python
from benchlib.repo import BENCHMARKS_MD, BIN_DIR, PIPELINES_DIR, REPO, clean_environ
from benchlib.sections import write_section
from benchlib.timing import Sample
from dag_parsing_bench import DAGS_DIR, LEAKS, MARK, OUR_DAG_FILE, SECTION
from dag_parsing_bench.children import (
    CHILD_DAGBAG,
    CHILD_IMPORTTIME,
    CHILD_PHASES,
    CHILD_RUN_FILE,
    CHILD_RUN_FILE_AFTER_SDK,
    CHILD_SDK_IMPORT,
    EMPTY_DAG,
    SCHEDULED_DAG,
)
from dag_parsing_bench.demo import measure_demo
from dag_parsing_bench.report import Measured, render

IMPORTTIME_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


# --- running children ---------------------------------------------------------------------------------------


def mlops_environ(home: Path, pycache: Path) -> dict[str, str]:
    """The environment ``mlops env --home HOME`` prints, on a clean copy of ours, plus the pipelines dir.

    Bytecode is cached as in an installed environment, but under ``pycache`` (``PYTHONPYCACHEPREFIX``) so
    that nothing is written into the checkout; ``PYTHONDONTWRITEBYTECODE`` would otherwise make every child
    recompile the ``mlops`` sources.
    """
    base = clean_environ(LEAKS)
    result = subprocess.run(
        [str(BIN_DIR / "mlops"), "env", "--home", str(home)],
        env=base,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    env = dict(base)
    for line in result.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    env["MLOPS_PIPELINES_DIR"] = str(PIPELINES_DIR)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_child(code: str, env: dict[str, str], *args: str) -> Any:
    """Run ``code`` in a fresh interpreter and return the JSON it printed after ``BENCH``."""
    result = run_python("-c", code, *args, env=env, tail=3000)
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"benchmark child printed no result:\n{result.stdout[-2000:]}")
    return json.loads(lines[-1][len(MARK) :])


def repeat_interleaved(
    variants: dict[str, tuple[str, tuple[str, ...]]], env: dict[str, str], repeat: int
) -> dict[str, Sample]:
    """Time every variant ``repeat`` times, alternating between them so that drift in load hits all alike."""
    for code, args in variants.values():
        run_child(code, env, *args)  # warm-up: bytecode and OS file caches
    samples = {name: Sample() for name in variants}
    for _ in range(repeat):
        for name, (code, args) in variants.items():
            samples[name].values.append(float(run_child(code, env, *args)))
    return samples


# --- measurements -------------------------------------------------------------------------------------------


def measure_imports(env: dict[str, str], files: dict[str, Path], repeat: int) -> dict[str, Sample]:
    """Wall time of running each file, with and without the shared ``import airflow.sdk``."""
    variants: dict[str, tuple[str, tuple[str, ...]]] = {"sdk": (CHILD_SDK_IMPORT, ())}
    for name, path in files.items():
        variants[f"{name}/total"] = (CHILD_RUN_FILE, (str(path),))
        variants[f"{name}/after_sdk"] = (CHILD_RUN_FILE_AFTER_SDK, (str(path),))
    return repeat_interleaved(variants, env, repeat)


def measure_phases(env: dict[str, str], repeat: int) -> dict[str, Sample]:
    """Median time of each phase of what our DAG file does, after the shared import."""
    run_child(CHILD_PHASES, env)
    samples: dict[str, Sample] = {}
    for _ in range(repeat):
        for phase, seconds in run_child(CHILD_PHASES, env).items():
            samples.setdefault(phase, Sample()).values.append(seconds)
    return samples


def parse_importtime(stderr: str) -> dict[str, tuple[int, int]]:
    """Module -> (self, cumulative) microseconds from ``-X importtime`` output after the start mark."""
    _, _, after = stderr.partition("BENCH-START")
    modules: dict[str, tuple[int, int]] = {}
    for line in after.splitlines():
        if match := IMPORTTIME_LINE.match(line):
            modules[match.group(4)] = (int(match.group(1)), int(match.group(2)))
    return modules


def extra_imports(env: dict[str, str], ours: Path, peer: Path) -> dict[str, tuple[int, int]]:
    """Modules our file imports that the peer does not (after both imported ``airflow.sdk``)."""
    found = {}
    for name, path in (("ours", ours), ("peer", peer)):
        result = run_python("-X", "importtime", "-c", CHILD_IMPORTTIME, str(path), env=env)
        found[name] = parse_importtime(result.stderr)
    return {module: times for module, times in found["ours"].items() if module not in found["peer"]}


def measure_dagbag(env: dict[str, str], folders: dict[str, Path], repeat: int) -> dict[str, Any]:
    """DagBag construction time per folder (median, min), with its DAG count, import errors and per-file times."""
    results: dict[str, Any] = {}
    for folder in folders.values():
        run_child(CHILD_DAGBAG, env, str(folder))  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in folders}
    for _ in range(repeat):
        for name, folder in folders.items():
            runs[name].append(run_child(CHILD_DAGBAG, env, str(folder)))
    for name, found in runs.items():
        per_file: dict[str, Sample] = {}
        for run in found:
            for file, seconds in run["files"].items():
                per_file.setdefault(file, Sample()).values.append(seconds)
        results[name] = {
            "sample": Sample([run["seconds"] for run in found]),
            "dags": found[-1]["dags"],
            "errors": found[-1]["errors"],
            "files": per_file,
        }
    return results


# --- the machine --------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and Airflow version of this machine."""
    return {**machine_facts(), "Airflow": metadata.version("apache-airflow")}


def main(argv: list[str] | None = None) -> int:
    """Measure, rewrite section ``dag-parsing``; 1 when the demo failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-demo", action="store_true", help="do not run `mlops demo`")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions per measurement (default 7)")
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCHMARKS_MD,
        help="Markdown file whose section dag-parsing is rewritten",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        tmp_dir = Path(tmp)
        env = mlops_environ(tmp_dir / "home", tmp_dir / "pycache")
        peer_dir = tmp_dir / "empty_dags"
        peer_dir.mkdir()
        empty_file = peer_dir / "empty_dag.py"
        empty_file.write_text(EMPTY_DAG, encoding="utf-8")
        scheduled_file = tmp_dir / "empty_scheduled_dag.py"
        scheduled_file.write_text(SCHEDULED_DAG, encoding="utf-8")

        print(f"1/3 importing the DAG files ({args.repeat} repetitions) ...")
        imports = measure_imports(
            env, {"ours": OUR_DAG_FILE, "empty": empty_file, "scheduled": scheduled_file}, args.repeat
        )
        phases = measure_phases(env, args.repeat)
        extra = extra_imports(env, OUR_DAG_FILE, empty_file)
        print("2/3 DagBag ...")
        dagbags = measure_dagbag(env, {"dags/": DAGS_DIR, "empty peer": peer_dir}, args.repeat)
    demo = None
    if not args.skip_demo:
        print("3/3 mlops demo (a few minutes) ...")
        demo = measure_demo()
    loads = (load_start, load_average())

    page = render(args, machine(), loads, Measured(imports, phases, extra, dagbags, demo))
    write_section(args.out, SECTION, page)
    print(page)
    print(f"Written to {args.out}")
    return 1 if demo is not None and demo.exit_code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
