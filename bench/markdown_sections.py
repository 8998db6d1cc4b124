"""Each benchmark script owns one section of ``docs/benchmarks.md`` and rewrites only that one.

A section is the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``. Writing a section replaces
what its markers enclose and keeps the rest of the file; a section not in the file yet is appended; a
missing file is created with a short title first.
"""

from __future__ import annotations

from pathlib import Path

TITLE = "# Benchmarks\n"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with section ``name`` holding ``body`` (appended when the section is not there yet).

    Raises:
        ValueError: the markers of ``name`` are unbalanced or out of order (nothing is guessed).
    """
    begin, end = markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    starts, ends = text.count(begin), text.count(end)
    if starts == 0 and ends == 0:
        return f"{text.rstrip()}\n\n{block}\n"
    first, last = text.find(begin), text.find(end)
    if starts != 1 or ends != 1 or last < first:
        raise ValueError(
            f"section '{name}': expected one '{begin}' before one '{end}', found {starts} and {ends}; "
            "fix the file by hand"
        )
    return text[:first] + block + text[last + len(end) :]


def write_section(path: Path, name: str, body: str) -> None:
    """Replace section ``name`` of the Markdown file ``path`` with ``body``, keeping everything else."""
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(text, name, body), encoding="utf-8")


# The machine every benchmark states next to its figures --------------------------------------------------------
def machine_facts(packages: tuple[str, ...] = ()) -> dict[str, str]:
    """CPU model, logical cores, memory, OS, Python, and the version of each of ``packages``."""
    import contextlib
    import os
    import platform
    from importlib import metadata

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), Path("/proc/cpuinfo").open(encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError), Path("/proc/meminfo").open(encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    facts = {
        "CPU": cpu,
        "Cores (logical)": str(os.cpu_count()),
        "Memory": memory,
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }
    for package in packages:
        try:
            facts[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    return facts


def git(repo: Path, *words: str) -> str:
    """``git <words>`` in ``repo``: its output, or "" when git fails."""
    import subprocess

    result = subprocess.run(["git", *words], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def load_average() -> str:
    import os

    return " / ".join(f"{value:.2f}" for value in os.getloadavg())
