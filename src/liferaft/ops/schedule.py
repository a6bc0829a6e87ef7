"""When a job runs: systemd calendar events (``daily``, ``Mon..Fri 22:00``, ``*:0/15``,
``*-*-01 03:00:00``) or intervals (``90s``, ``15min``, ``2h``, ``1d``).

Our own parser, not a library: the schedule is the daemon's core, the grammar is small (systemd.time(7),
without time zones and the ``~`` last-day form), and the one Python package that parses it is barely
used. ``next_after(t)`` is the first moment strictly after ``t``, in local time; an interval counts
from the start of the previous run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from liferaft.format import units

SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
}
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class ScheduleError(ValueError):
    """Why a schedule or duration does not parse (the config loader adds the file and line)."""


def parse_duration(text: str) -> float:
    """'90s', '15min', '1h 30min', '2d' -> seconds above zero (a bare number is seconds)."""
    try:
        total = units.parse_duration(text, bare_seconds=True)
    except ValueError:
        raise ScheduleError(f"{text!r} is not a duration (say 90s, 15min, 2h or 1d)") from None
    if total <= 0:
        raise ScheduleError(f"{text!r} is not a positive duration")
    return total


def _values(field: str, low: int, high: int, names: list[str] | None = None) -> frozenset[int]:
    """One field: '*', 'a', 'a..b', 'a/step', '*/step', lists of these separated by commas."""
    out: set[int] = set()

    def value(v: str) -> int:
        if names and v.lower()[:3] in names:
            return names.index(v.lower()[:3])
        if not v.isdigit():
            raise ScheduleError(f"{v!r} is not a number")
        return int(v)

    for part in field.split(","):
        step, stepped = 1, "/" in part
        if stepped:
            part, s = part.split("/", 1)
            step = value(s)
            if step < 1:
                raise ScheduleError(f"a repetition of {step}")
        if part == "*":
            a, b = low, high
        elif ".." in part:
            x, y = part.split("..", 1)
            a, b = value(x), value(y)
        else:
            a = value(part)
            b = high if stepped else a
        if not (low <= a <= high and low <= b <= high and a <= b):
            raise ScheduleError(f"{part!r} is outside {low}..{high}")
        out.update(range(a, b + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Calendar:
    text: str
    weekdays: frozenset[int]
    years: frozenset[int] | None
    months: frozenset[int]
    days: frozenset[int]
    hours: frozenset[int]
    minutes: frozenset[int]
    seconds: frozenset[int]

    def next_after(self, t: datetime) -> datetime:
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(366 * 8):  # eight years, then the event never comes (say Feb 30)
            if (
                day.month in self.months
                and day.day in self.days
                and day.weekday() in self.weekdays
                and (self.years is None or day.year in self.years)
            ):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        for s in sorted(self.seconds):
                            c = day.replace(hour=h, minute=m, second=s)
                            if c > t:
                                return c
            day += timedelta(days=1)
        raise ScheduleError(f"{self.text!r} never comes")


@dataclass(frozen=True)
class Interval:
    text: str
    seconds: float

    def next_after(self, t: datetime) -> datetime:
        return t + timedelta(seconds=self.seconds)


Schedule = Calendar | Interval


def parse_schedule(text: str) -> Schedule:
    s = text.strip()
    if not s:
        raise ScheduleError("an empty schedule")
    if s[0].isdigit() and not re.search(r"[:*-]", s):
        return Interval(s, parse_duration(s))
    s = SHORTHANDS.get(s.lower(), s)
    words = s.split()
    weekdays = frozenset(range(7))
    if words and words[0][:3].lower() in DAYS:
        weekdays = _values(words.pop(0), 0, 6, DAYS)
    date, time = "*-*-*", "00:00:00"
    for w in words:
        if ":" in w:
            time = w
        elif "-" in w or w == "*":
            date = w
        else:
            raise ScheduleError(f"{w!r} is neither a date (Y-M-D) nor a time (H:M[:S])")
    if len(words) > 2:
        raise ScheduleError("more than a weekday, a date and a time")
    d = date.split("-")
    if len(d) == 2:
        d = ["*", *d]
    if len(d) != 3:
        raise ScheduleError(f"{date!r} is not a date (Y-M-D, M-D, with * for any)")
    tm = time.split(":")
    if len(tm) == 2:
        tm.append("00")
    if len(tm) != 3:
        raise ScheduleError(f"{time!r} is not a time (H:M or H:M:S)")
    return Calendar(
        text=text.strip(),
        weekdays=weekdays,
        years=None if d[0] == "*" else _values(d[0], 1970, 2200),
        months=_values(d[1], 1, 12),
        days=_values(d[2], 1, 31),
        hours=_values(tm[0], 0, 23),
        minutes=_values(tm[1], 0, 59),
        seconds=_values(tm[2], 0, 59),
    )
