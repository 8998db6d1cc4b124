"""Each benchmark script owns one section of ``docs/benchmarks.md`` and rewrites only that one.

A section is the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``. Writing a section replaces
what its markers enclose and keeps the rest of the file; a section not in the file yet is appended; a
missing file is created with a short title first.
"""

from __future__ import annotations

from pathlib import Path

TITLE = "# Benchmarks\n"


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of section ``name``."""
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
