"""Schedules: systemd calendar events and intervals, each next moment checked against the rule."""

from __future__ import annotations

from datetime import datetime

import pytest

from liferaft.ops.schedule import ScheduleError, parse_duration, parse_schedule

T = datetime(2026, 12, 2, 11, 47, 13)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("daily", datetime(2026, 12, 3, 0, 0)),
        ("hourly", datetime(2026, 12, 2, 12, 0)),
        ("weekly", datetime(2026, 12, 7, 0, 0)),
        ("monthly", datetime(2027, 1, 1, 0, 0)),
        ("Mon..Fri 22:00", datetime(2026, 12, 2, 22, 0)),
        ("Sat,Sun 03:30", datetime(2026, 12, 5, 3, 30)),
        ("*:0/15", datetime(2026, 12, 2, 12, 0)),
        ("*:*:0/20", datetime(2026, 12, 2, 11, 47, 20)),
        ("*-*-01 03:00:00", datetime(2027, 1, 1, 3, 0)),
        ("2027-06-15 08:00", datetime(2027, 6, 15, 8, 0)),
        ("12-24 18:00", datetime(2026, 12, 24, 18, 0)),
        ("*-*-* 11:47:13", datetime(2026, 12, 3, 11, 47, 13)),  # strictly after
    ],
)
def test_calendar_events(text: str, expected: datetime) -> None:
    assert parse_schedule(text).next_after(T) == expected


def test_intervals_count_from_the_time_given() -> None:
    assert parse_schedule("15min").next_after(T) == datetime(2026, 12, 2, 12, 2, 13)
    assert parse_duration("1h 30min") == 5400
    assert parse_duration("2d") == 172800
    assert parse_duration("90") == 90


@pytest.mark.parametrize("text", ["", "sometimes", "*:61", "Funday 10:00", "25:00", "*-13-01", "0s", "5 parsecs", "*:0/0"])
def test_bad_schedules_say_why(text: str) -> None:
    with pytest.raises(ScheduleError) as e:
        parse_schedule(text)
    assert str(e.value)


def test_an_event_that_never_comes_is_named() -> None:
    with pytest.raises(ScheduleError, match="never comes"):
        parse_schedule("*-02-30 00:00").next_after(T)
