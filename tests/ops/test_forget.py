"""Keep rules, table-driven over synthetic timestamps."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest

from liferaft.errors import UsageError
from liferaft.format import SnapshotId
from liferaft.format.snapshot import Snapshot
from liferaft.ops.forget import KeepPolicy, decide, parse_duration


def snap(t: str, host: str = "h1", source: str = "/dev/sda") -> Snapshot:
    return Snapshot(host, source, "device", t, "plain", 1 << 20, 1 << 20, (), bytes(32))


def kept(snaps: dict[str, Snapshot], policy: KeepPolicy) -> set[str]:
    return {f.snapshot_id for f in decide([(SnapshotId(k), v) for k, v in snaps.items()], policy) if f.keep}


DAYS = {
    "a": snap("2026-11-28T23:59:59.000000Z"),
    "b": snap("2026-11-29T00:00:00.000000Z"),
    "c": snap("2026-11-29T12:00:00.000000Z"),
    "d": snap("2026-11-30T08:00:00.000000Z"),
    "e": snap("2026-11-30T08:00:00.000000Z"),  # the same instant as d: ordered by id
    "f": snap("2026-12-01T01:00:00.000000Z"),
}


@pytest.mark.parametrize(
    ("policy", "want"),
    [
        (KeepPolicy(last=2), {"f", "e"}),
        (KeepPolicy(daily=2), {"f", "e"}),
        (KeepPolicy(daily=3), {"f", "e", "c"}),
        (KeepPolicy(daily=10), {"f", "e", "c", "a"}),
        (KeepPolicy(hourly=3), {"f", "e", "c"}),
        (KeepPolicy(weekly=1), {"f"}),  # ISO week 49 runs from Monday 2026-11-30: d, e and f
        (KeepPolicy(weekly=2), {"f", "c"}),  # week 48 ends on Sunday the 29th
        (KeepPolicy(monthly=2), {"f", "e"}),
        (KeepPolicy(yearly=5), {"f"}),
        (KeepPolicy(within=timedelta(days=1)), {"f", "e", "d"}),
        (KeepPolicy(within=timedelta(hours=17)), {"f", "e", "d"}),
        (KeepPolicy(within=timedelta(hours=16)), {"f"}),
        (KeepPolicy(last=1, monthly=3), {"f", "e"}),
    ],
)
def test_keep_rules(policy: KeepPolicy, want: set[str]) -> None:
    assert kept(DAYS, policy) == want


def test_each_host_and_source_is_its_own_group() -> None:
    snaps = {
        "h1-old": snap("2026-11-01T00:00:00.000000Z", "h1"),
        "h1-new": snap("2026-12-01T00:00:00.000000Z", "h1"),
        "h2-old": snap("2025-01-01T00:00:00.000000Z", "h2"),
        "h1-b": snap("2024-01-01T00:00:00.000000Z", "h1", "/dev/sdb"),
    }
    assert kept(snaps, KeepPolicy(last=1)) == {"h1-new", "h2-old", "h1-b"}


def test_weeks_across_the_new_year_are_iso_weeks() -> None:
    snaps = {
        "mon": snap("2024-12-30T10:00:00.000000Z"),  # ISO 2025-W01
        "wed": snap("2025-01-01T10:00:00.000000Z"),  # the same week
        "sun": snap("2024-12-29T10:00:00.000000Z"),  # ISO 2024-W52
    }
    assert kept(snaps, KeepPolicy(weekly=2)) == {"wed", "sun"}


def test_the_machines_time_zone_moves_no_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    results = []
    for zone in ("UTC", "America/New_York", "Pacific/Kiritimati"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        results.append(kept(DAYS, KeepPolicy(daily=3)))
    monkeypatch.delenv("TZ")
    time.tzset()
    assert results[0] == results[1] == results[2] == {"f", "e", "c"}
    assert os.environ.get("TZ") is None


def test_the_reasons_name_the_rules_and_no_rule_is_refused() -> None:
    fates = {f.snapshot_id: f for f in decide([(SnapshotId(k), v) for k, v in DAYS.items()], KeepPolicy(last=1, daily=2))}
    assert fates["f"].reasons == ("last 1", "daily 2026-12-01")
    assert fates["e"].reasons == ("daily 2026-11-30",) and not fates["d"].keep and fates["d"].reasons == ()
    with pytest.raises(UsageError):
        decide([], KeepPolicy())


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("1y2d", 365 * 86400 + 172800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    for bad in ("", "7", "d", "3x", "-1d"):
        with pytest.raises(ValueError):
            parse_duration(bad)
