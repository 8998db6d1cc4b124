"""Which slice of the inference log one monitoring run looks at (pure: the caller passes the clock in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops.errors import MonitoringError

__all__ = ["DEFAULT_SPAN", "parse_instant", "resolve_window"]

#: The span of a window that only one of its ends (or neither) defines.
DEFAULT_SPAN = timedelta(days=1)


def parse_instant(value: datetime | str | None, name: str = "value") -> datetime | None:
    """A timezone-aware instant from a datetime or an ISO 8601 string (UTC when it names no zone).

    Args:
        value: A datetime, an ISO 8601 string (``Z`` allowed), or None / ``""`` for "not given".
        name: What the value is, for the error message (``start``, ``end``...).

    Returns:
        The instant, or None when no value was given.

    Raises:
        MonitoringError: the string is not an ISO 8601 date-time.

    Example:
        >>> parse_instant("2026-11-26T00:00Z", "start").isoformat()
        '2026-11-26T00:00:00+00:00'
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise MonitoringError(
                f"window {name} '{value}' is not an ISO 8601 date-time: give e.g. 2026-11-26T00:00 (UTC) "
                "or 2026-11-26T00:00+01:00, or leave it empty"
            ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def resolve_window(
    start: datetime | str | None,
    end: datetime | str | None,
    interval_start: datetime | str | None,
    interval_end: datetime | str | None,
    now: datetime,
) -> tuple[datetime, datetime]:
    """The window ``[start, end)`` of one monitoring run.

    The form's ``start``/``end`` win when given (a missing end is ``now``, a missing start one day before the
    end); with neither, the run's data interval; without a usable data interval (a run triggered by hand has
    an empty one), the day before ``now``.

    Args:
        start: The form's window start (datetime, ISO string, or None / ``""``).
        end: The form's window end, exclusive.
        interval_start: The run's data interval start, if any.
        interval_end: The run's data interval end, if any.
        now: The current time (timezone-aware).

    Returns:
        ``(start, end)``, both timezone-aware, ``start < end``.

    Raises:
        MonitoringError: a value is not an ISO date-time, or the window ends before it starts.

    Example:
        >>> now = datetime(2026, 11, 27, 12, tzinfo=UTC)
        >>> [w.isoformat() for w in resolve_window("", "2026-11-27", None, None, now)]
        ['2026-11-26T00:00:00+00:00', '2026-11-27T00:00:00+00:00']
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    first, last = parse_instant(start, "start"), parse_instant(end, "end")
    if first is None and last is None:
        first = parse_instant(interval_start, "data interval start")
        last = parse_instant(interval_end, "data interval end")
        if first is None or last is None or last <= first:
            first, last = now - DEFAULT_SPAN, now
    elif last is None:
        last = now
    elif first is None:
        first = last - DEFAULT_SPAN
    assert first is not None and last is not None
    if last <= first:
        raise MonitoringError(
            f"the monitoring window ends ({last.isoformat()}) before it starts ({first.isoformat()}): "
            "give an end after the start, or leave the end empty for 'now'"
        )
    return first, last
