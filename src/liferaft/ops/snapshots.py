"""Listing snapshots and showing one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liferaft.format.snapshot import Snapshot
from liferaft.repo.repository import Repository


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.snapshot_id,
            "time": self.time,
            "hostname": self.hostname,
            "source": self.source,
            "provider": self.provider,
            "size": self.size,
            "new_bytes": self.new_bytes,
            "stored_bytes": self.stored_bytes,
        }


def list_snapshots(repo: Repository) -> list[SnapshotRow]:
    return [_row(sid, snap) for sid, snap in repo.snapshots()]


def _row(sid: str, snap: Snapshot) -> SnapshotRow:
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
    )


def show(repo: Repository, name: str) -> dict[str, Any]:
    sid = repo.resolve(name)
    snap = repo.load_snapshot(sid)
    return {
        **_row(sid, snap).as_dict(),
        "source_kind": snap.source_kind,
        "chunk_size": snap.chunk_size,
        "chunks": snap.chunk_count,
        "image_digest": snap.image_digest.hex(),
        "stats": snap.stats,
        "layout": snap.layout,
    }
