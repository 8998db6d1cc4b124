"""The small chart of a pipeline card: the gate's primary metric across versions, as inline SVG geometry.

Pure: :func:`metric_chart` turns a :class:`~mlops.ui.models.MetricHistory` into coordinates and texts; the
template draws them (``models_page.html.j2``). No JavaScript, nothing loaded from the network.

    >>> from mlops.ui.models import MetricHistory, MetricPoint
    >>> chart = metric_chart(MetricHistory("roc_auc", [MetricPoint(1, 0.9), MetricPoint(2, 0.95, True)]))
    >>> [(p.version, p.value, p.champion) for p in chart.points]
    [(1, 0.9, False), (2, 0.95, True)]
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops.ui.models import MetricHistory

WIDTH, HEIGHT = 260, 72
#: Room for the axis labels on the left and the version numbers below; PAD keeps the points (and the
#: champion's ring) off the labels.
LEFT, RIGHT, TOP, BOTTOM, PAD = 36, 8, 10, 18, 10


@dataclass(frozen=True)
class ChartPoint:
    version: int
    value: float
    champion: bool
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    metric: str
    width: int
    height: int
    points: list[ChartPoint]
    #: The polyline's ``points`` attribute ("x,y x,y ...").
    line: str
    low: str
    high: str
    title: str
    desc: str
    #: Where the lowest and highest values sit (the two axis labels).
    y_low: float
    y_high: float
    #: The x axis: from ``left`` to ``right`` at height ``baseline``.
    baseline: float
    left: int = LEFT
    right: int = WIDTH - RIGHT


def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def metric_chart(history: MetricHistory) -> Chart | None:
    """The chart of ``history``, or None when no version has the metric (nothing to draw)."""
    if not history.points:
        return None
    values = [p.value for p in history.points]
    low, high = min(values), max(values)
    span = high - low or max(abs(high) * 0.05, 0.01)  # one value, or all equal: a flat line mid-height
    if high == low:
        low, high = low - span / 2, high + span / 2
    plot_w, plot_h = WIDTH - LEFT - RIGHT - 2 * PAD, HEIGHT - TOP - BOTTOM
    step = plot_w / (len(values) - 1) if len(values) > 1 else 0.0
    points = []
    for index, point in enumerate(history.points):
        x = LEFT + PAD + (index * step if len(values) > 1 else plot_w / 2)
        y = TOP + plot_h * (1 - (point.value - low) / (high - low))
        label = f"v{point.version}: {history.metric} {_fmt(point.value)}" + (
            " (champion)" if point.champion else ""
        )
        points.append(ChartPoint(point.version, point.value, point.champion, round(x, 1), round(y, 1), label))
    champion = next((p for p in points if p.champion), None)
    desc = "; ".join(p.label for p in points)
    if history.ungated:
        desc += f"; {history.ungated} version(s) without a gate value not shown"
    title = f"{history.metric} of {len(points)} gated version(s)" + (
        f", champion v{champion.version}" if champion else ", no champion"
    )
    return Chart(
        metric=history.metric,
        width=WIDTH,
        height=HEIGHT,
        points=points,
        line=" ".join(f"{p.x},{p.y}" for p in points),
        low=_fmt(min(values)),
        high=_fmt(max(values)),
        title=title,
        desc=desc,
        y_low=round(TOP + plot_h * (1 - (min(values) - low) / (high - low)), 1),
        y_high=round(TOP + plot_h * (1 - (max(values) - low) / (high - low)), 1),
        baseline=TOP + plot_h,
    )
