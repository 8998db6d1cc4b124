"""The monitoring window (pure): the form's start/end, else the data interval, else the last day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mlops.core.window import parse_instant, resolve_window
from mlops.errors import MonitoringError

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
DAY = datetime(2026, 11, 26, tzinfo=UTC)


def test_the_forms_start_and_end_win_over_the_data_interval() -> None:
    window = resolve_window("2026-11-20T00:00", "2026-11-21T06:00Z", DAY, DAY + timedelta(days=1), NOW)
    assert window == (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, 6, tzinfo=UTC))


def test_one_end_of_the_form_fills_the_other() -> None:
    assert resolve_window("2026-11-27T00:00", "", None, None, NOW) == (
        datetime(2026, 11, 27, tzinfo=UTC),
        NOW,
    )
    assert resolve_window(None, "2026-11-27", None, None, NOW) == (DAY, datetime(2026, 11, 27, tzinfo=UTC))


def test_an_empty_form_takes_the_data_interval() -> None:
    assert resolve_window("", "", DAY, DAY + timedelta(hours=1), NOW) == (DAY, DAY + timedelta(hours=1))
    # Airflow may hand the interval over as strings (a rendered template); they parse the same way.
    assert resolve_window("", "", DAY.isoformat(), "2026-11-26T01:00:00+00:00", NOW) == (
        DAY,
        DAY + timedelta(hours=1),
    )


def test_no_usable_data_interval_means_the_last_day() -> None:
    assert resolve_window(None, None, None, None, NOW) == (NOW - timedelta(days=1), NOW)
    # A run triggered by hand has an empty interval (start == end).
    assert resolve_window("", "", NOW, NOW, NOW) == (NOW - timedelta(days=1), NOW)


def test_times_without_a_zone_are_utc_and_other_zones_are_kept() -> None:
    assert parse_instant("2026-11-26T00:00") == DAY
    paris = parse_instant("2026-11-26T01:00+01:00")
    assert paris == DAY and paris.utcoffset() == timedelta(hours=1)
    assert parse_instant(datetime(2026, 11, 26)) == DAY
    assert parse_instant("") is None and parse_instant(None) is None
    start, _ = resolve_window(
        datetime(2026, 11, 26, 1, tzinfo=timezone(timedelta(hours=1))), None, None, None, NOW
    )
    assert start == DAY


def test_a_date_that_is_not_iso_is_refused_with_what_to_type() -> None:
    with pytest.raises(
        MonitoringError, match=r"window start 'yesterday' is not an ISO 8601 date-time.*2026-11-26"
    ):
        resolve_window("yesterday", "", None, None, NOW)


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(MonitoringError, match="ends .* before it starts"):
        resolve_window("2026-11-27T00:00", "2026-11-26T00:00", None, None, NOW)
    with pytest.raises(MonitoringError, match="before it starts"):  # a start in the future, no end
        resolve_window("2026-12-01T00:00", "", None, None, NOW)
