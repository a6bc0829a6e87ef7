"""Forget: drop the snapshots that no keep rule keeps, per host and source.

Rules as restic and borg have them: the newest ``last`` snapshots; the newest snapshot of each of
the newest ``hourly`` hours, ``daily`` days, ``weekly`` ISO weeks, ``monthly`` months and
``yearly`` years that have one; and every snapshot taken within ``within`` of the group's newest.
Times are compared as times, in UTC (a snapshot records UTC with microseconds, so a time-zone or
daylight-saving change moves no bucket; snapshots of the same instant are ordered by id). Each
(host, source) is its own group, so one machine's rules never drop another's snapshots.

A snapshot that Object Lock still retains is kept, with the lock's date as its reason. Only
snapshot objects are removed; ``gc`` reclaims what no snapshot references any more. A
snapshot that cannot be read is never forgotten (its group is unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import groupby

from liferaft.errors import DeleteRefused, UsageError
from liferaft.format import SnapshotId, units
from liferaft.format.snapshot import Snapshot
from liferaft.ops.gc import require_deletes
from liferaft.ops.snapshots import Selection, select
from liferaft.repo import names
from liferaft.repo.repository import Repository


@dataclass(frozen=True, slots=True)
class KeepPolicy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: timedelta | None = None

    @property
    def empty(self) -> bool:
        return not (self.last or self.hourly or self.daily or self.weekly or self.monthly or self.yearly or self.within)


@dataclass(frozen=True, slots=True)
class Fate:
    snapshot_id: str
    time: str
    hostname: str
    source: str
    keep: bool
    reasons: tuple[str, ...]
    """The rules that keep it ('daily 2026-12-01', 'last 1', 'within 7d'); empty when forgotten."""

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "reasons": list(self.reasons)}


def moment(snap: Snapshot) -> datetime:
    """A snapshot's time as an aware UTC datetime."""
    return datetime.fromisoformat(snap.time.replace("Z", "+00:00")).astimezone(UTC)


BUCKETS: tuple[tuple[str, Callable[[datetime], str]], ...] = (
    ("hourly", lambda t: t.strftime("%Y-%m-%d %H:00")),
    ("daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", lambda t: f"{t.isocalendar().year:04d}-W{t.isocalendar().week:02d}"),
    ("monthly", lambda t: t.strftime("%Y-%m")),
    ("yearly", lambda t: t.strftime("%Y")),
)


def decide(snapshots: list[tuple[SnapshotId, Snapshot]], policy: KeepPolicy) -> list[Fate]:
    """Every snapshot's fate under policy, grouped by (host, source), newest first in each."""
    if policy.empty:
        raise UsageError("give at least one --keep-* rule (forget never drops every snapshot by default)")
    ordered = sorted(snapshots, key=lambda s: (s[1].hostname, s[1].source, moment(s[1]), s[0]), reverse=True)
    fates: list[Fate] = []
    for _, group in groupby(ordered, key=lambda s: (s[1].hostname, s[1].source)):
        members = list(group)
        reasons: dict[str, list[str]] = {sid: [] for sid, _ in members}
        for sid, _ in members[: policy.last]:
            reasons[sid].append(f"last {policy.last}")
        for rule, key in BUCKETS:
            count = getattr(policy, rule)
            seen: set[str] = set()
            for sid, snap in members:
                if len(seen) >= count:
                    break
                bucket = key(moment(snap))
                if bucket not in seen:
                    seen.add(bucket)
                    reasons[sid].append(f"{rule} {bucket}")
        if policy.within is not None:
            newest = moment(members[0][1])
            for sid, snap in members:
                if newest - moment(snap) <= policy.within:
                    reasons[sid].append(f"within {policy.within}")
        for sid, snap in members:
            why = tuple(reasons[sid])
            fates.append(Fate(sid, snap.time, snap.hostname, snap.source, bool(why), why))
    return fates


def forget(
    repo: Repository, policy: KeepPolicy, where: Selection = Selection(), dry_run: bool = False,
    named: tuple[str, ...] = (),
) -> list[Fate]:  # fmt: skip
    """Decide, and (unless dry_run) remove the snapshots no rule keeps; with named snapshots
    (ids, prefixes or 'latest'), exactly those instead. Unreadable snapshots are left alone."""
    if not dry_run:
        require_deletes(repo, "forget")
    damaged: list[str] = []
    chosen = [(sid, snap) for sid, snap in repo.snapshots(damaged) if where.matches(snap)]
    if named:
        if not policy.empty:
            raise UsageError("name snapshots or give --keep-* rules, not both")
        doomed = {select(repo, n, where) for n in named}
        fates = [
            Fate(sid, snap.time, snap.hostname, snap.source, sid not in doomed, () if sid in doomed else ("not named",))
            for sid, snap in chosen
        ]
    else:
        fates = decide(chosen, policy)
    if dry_run:
        return fates
    done = []
    for fate in fates:
        if not fate.keep:
            try:
                repo.store.delete(names.snapshot(fate.snapshot_id))
            except DeleteRefused:  # Object Lock retains it: kept, and said so
                until = repo.store.stat(names.snapshot(fate.snapshot_id)).locked_until
                shown = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if until else "its date"
                fate = replace(fate, keep=True, reasons=(f"object lock until {shown}",))
        done.append(fate)
    repo.store.sync()
    return done


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '12h', '7d', '2w', '1y2d' (a year: 365 days); a number needs its unit."""
    return timedelta(seconds=units.parse_duration(text))
