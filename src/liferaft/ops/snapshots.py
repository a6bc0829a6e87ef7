"""Listing snapshots, choosing one, and showing one.

One repository often holds the disks of several machines (they deduplicate against each other), so
'latest' alone is refused when it could mean more than one source: restoring another machine's disk
is the worst surprise a restore can hold. A ``Selection`` (source and/or host) narrows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from liferaft.errors import AmbiguousLatest, SnapshotNotFound
from liferaft.format import SnapshotId
from liferaft.format.drill import DrillVerdict
from liferaft.format.snapshot import Snapshot
from liferaft.repo.repository import Repository


@dataclass(frozen=True, slots=True)
class Selection:
    """The snapshots of one source (as given to backup: a device, or an image file's path, also
    relative to the current folder) and/or one host; None: any."""

    source: str | None = None
    host: str | None = None

    @property
    def given(self) -> bool:
        """Whether it narrows anything."""
        return self.source is not None or self.host is not None

    def matches(self, snap: Snapshot) -> bool:
        if self.host is not None and snap.hostname != self.host:
            return False
        if self.source is not None:
            return snap.source in {self.source, os.path.abspath(self.source), os.path.realpath(self.source)}
        return True

    def __str__(self) -> str:
        given = [f"--source {self.source}"] * (self.source is not None) + [f"--host {self.host}"] * (self.host is not None)
        return " ".join(given)


def select(repo: Repository, name: str, where: Selection = Selection(), damaged: list[str] | None = None) -> SnapshotId:
    """The snapshot name stands for: an id prefix, or 'latest' of the snapshots where selects,
    which must all be of one source on one host. Snapshots that cannot be read are left out of
    'latest' and named in damaged (a fresh list), when given; else they raise CorruptRepository."""
    shown = f"{name} {where}".strip()
    if name != "latest":
        sid = repo.resolve(name)
        if where.given and not where.matches(repo.load_snapshot(sid)):
            raise SnapshotNotFound(name=shown)
        return sid
    found: list[tuple[SnapshotId, Snapshot]] = []
    for _ in range(2):  # a second listing before calling it missing: a listing may lag
        if damaged is not None:
            damaged.clear()
        found = [(sid, snap) for sid, snap in repo.snapshots(damaged) if where.matches(snap)]
        if found:
            break
    unreadable = damaged or []  # without a damaged list, an unreadable snapshot has raised
    if not found:
        raise SnapshotNotFound(name=shown)
    sources = sorted({(snap.hostname, snap.source) for _, snap in found})
    # an unreadable snapshot may be of any source: without a selection, 'latest' could mean it
    if len(sources) > 1 or (unreadable and not where.given):
        names = [f"{host}:{source}" for host, source in sources]
        listed = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        what = f"{len(sources)} {'source' if len(sources) == 1 else 'sources'} ({listed})"
        if unreadable:
            what += f" and {len(unreadable)} unreadable of unknown source"
        raise AmbiguousLatest(sources=what)
    return found[-1][0]


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    snapshot_id: str
    time: str
    hostname: str
    source: str
    provider: str
    size: int
    new_bytes: int
    stored_bytes: int
    drill: DrillVerdict | None = None
    """The newest drill's verdict (``liferaft drill``), if it was drilled."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "drill": None if self.drill is None else _drill_summary(self.drill),
            "id": self.snapshot_id,
            "time": self.time,
            "hostname": self.hostname,
            "source": self.source,
            "provider": self.provider,
            "size": self.size,
            "new_bytes": self.new_bytes,
            "stored_bytes": self.stored_bytes,
        }


def list_snapshots(repo: Repository, where: Selection = Selection(), damaged: list[str] | None = None) -> list[SnapshotRow]:
    """The snapshots where selects, grouped by host and then source, oldest first in each; see
    Repository.snapshots for damaged."""
    found = [(sid, snap) for sid, snap in repo.snapshots(damaged) if where.matches(snap)]
    drills = repo.drills()
    return [_row(sid, snap, drills.get(sid)) for sid, snap in sorted(found, key=lambda s: (s[1].hostname, s[1].source))]


def _drill_summary(v: DrillVerdict) -> dict[str, Any]:
    return {"passed": v.passed, "time": v.time, "seconds": v.seconds, "why": v.why}


def _row(sid: str, snap: Snapshot, drill: DrillVerdict | None = None) -> SnapshotRow:
    stats = snap.stats
    return SnapshotRow(
        sid,
        snap.time,
        snap.hostname,
        snap.source,
        snap.provider,
        snap.size,
        int(stats.get("new_bytes", 0)),
        int(stats.get("stored_bytes", 0)),
        drill,
    )


def show(repo: Repository, name: str) -> dict[str, Any]:
    sid = select(repo, name)
    snap = repo.load_snapshot(sid)
    drill = repo.drills().get(sid)
    return {
        **_row(sid, snap).as_dict(),
        "drill": None if drill is None else drill.as_dict(),
        "source_kind": snap.source_kind,
        "chunk_size": snap.chunk_size,
        "chunks": snap.chunk_count,
        "image_digest": snap.image_digest.hex(),
        "consistency": consistency(snap),
        "stats": snap.stats,
        "layout": snap.layout,
    }


def consistency(snap: Snapshot) -> str:
    """'clean', 'crash-consistent', or 'not recorded' (snapshots written before liferaft recorded
    it; a reflink clone was always crash-consistent)."""
    recorded = snap.disk.consistency
    if recorded:
        return recorded
    return "crash-consistent" if snap.provider == "reflink" else "not recorded"
