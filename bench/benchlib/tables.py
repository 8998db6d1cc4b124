"""Markdown tables and the number formats of the benchmark sections.

A table is a header (titles, then one ``---`` or ``---:`` per column: ``align`` has an ``l`` or an ``r`` per
column, left by default) and rows of cells joined by ``|``. Every section opens with ``machine_table``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def row(*cells: object) -> str:
    """One table row: ``| a | b |``; an empty cell is ``| |``."""
    return "|" + "".join(f" {text} |" if (text := str(cell)) else " |" for cell in cells)


def header(*titles: str, align: str = "") -> str:
    """The title row and the separator row of a table; column ``i`` is right-aligned when ``align[i] == "r"``."""
    separators = ("---:" if align[i : i + 1] == "r" else "---" for i in range(len(titles)))
    return row(*titles) + "\n" + row(*separators)


def table(titles: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A whole table: ``header`` and one ``row`` per item of ``rows``."""
    return "\n".join([header(*titles, align=align), *(row(*cells) for cells in rows)])


def machine_table(facts: Mapping[str, str], loads: tuple[str, str]) -> str:
    """The machine table every section starts with: one row per fact, then the load averages at start and end."""
    return table(
        ("Machine", ""),
        [*facts.items(), ("Load average (1/5/15 min) at start / end", f"{loads[0]} — {loads[1]}")],
    )


def ms(seconds: float) -> str:
    """Milliseconds with one decimal: ``12.3 ms``."""
    return f"{seconds * 1000:.1f} ms"


def ms3(seconds: float) -> str:
    """Milliseconds to about three significant digits: ``2.87 ms``, ``18.9 ms``, ``184 ms``."""
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def us(seconds: float) -> str:
    """Whole microseconds: ``85 µs``."""
    return f"{seconds * 1e6:.0f} µs"


def secs(value: float) -> str:
    """Seconds with two decimals below 10, one above: ``3.14 s``, ``42.0 s``."""
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def mib(value: float) -> str:
    """Whole MiB with thousands separators: ``1,234 MiB``."""
    return f"{value:,.0f} MiB"


def verdict(passed: bool) -> str:
    """``**pass**`` or ``**fail**``."""
    return "**pass**" if passed else "**fail**"
