"""A snapshot: one stored image, the only commit point of a backup.

Canonical JSON, sealed. It names the chunk-map pieces (metadata blobs) and records what a restore
and a verify need: image size, chunk size, chunk count, and the image digest (keyed BLAKE3 over
the ids of all chunks in order, so a rebuilt image can be checked end to end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liferaft.format import ID_SIZE, ChunkId, canonical, check
from liferaft.format.layout import DiskLayout


@dataclass(frozen=True, slots=True)
class Snapshot:
    hostname: str
    source: str
    source_kind: str
    """'file' or 'device'."""
    time: str
    """UTC, ISO 8601 with microseconds ('2026-11-27T10:00:00.000000Z'); sorts as text."""
    provider: str
    size: int
    chunk_size: int
    map_pieces: tuple[ChunkId, ...]
    image_digest: bytes
    stats: dict[str, Any] = field(default_factory=dict)
    """Facts of the run (bytes read, new, stored, seconds); informative, never trusted."""
    layout: dict[str, Any] = field(default_factory=dict)
    """The partition table and per-partition facts, as stored; read it as ``disk``."""

    @property
    def disk(self) -> DiskLayout:
        """The layout as a typed record (format/layout.py)."""
        return DiskLayout.from_dict(self.layout)

    @property
    def chunk_count(self) -> int:
        return -(-self.size // self.chunk_size)

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "liferaft": "snapshot",
                "hostname": self.hostname,
                "source": self.source,
                "source_kind": self.source_kind,
                "time": self.time,
                "provider": self.provider,
                "size": self.size,
                "chunk_size": self.chunk_size,
                "map": [p.hex() for p in self.map_pieces],
                "image_digest": self.image_digest.hex(),
                "stats": self.stats,
                "layout": self.layout,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        obj = canonical.loads(data, "snapshot")
        check(obj.get("liferaft") == "snapshot", "snapshot: wrong kind")
        pieces = canonical.field(obj, "map", list, "snapshot")
        check(all(isinstance(p, str) for p in pieces), "snapshot: bad map")
        try:
            map_pieces = tuple(ChunkId(bytes.fromhex(p)) for p in pieces)
        except ValueError:
            check(False, "snapshot: map is not hex")
        check(all(len(p) == ID_SIZE for p in map_pieces), "snapshot: bad map id")
        snap = cls(
            hostname=canonical.field(obj, "hostname", str, "snapshot"),
            source=canonical.field(obj, "source", str, "snapshot"),
            source_kind=canonical.field(obj, "source_kind", str, "snapshot"),
            time=canonical.field(obj, "time", str, "snapshot"),
            provider=canonical.field(obj, "provider", str, "snapshot"),
            size=canonical.field(obj, "size", int, "snapshot"),
            chunk_size=canonical.field(obj, "chunk_size", int, "snapshot"),
            map_pieces=map_pieces,
            image_digest=canonical.hexfield(obj, "image_digest", ID_SIZE, "snapshot"),
            stats=canonical.field(obj, "stats", dict, "snapshot"),
            layout=canonical.field(obj, "layout", dict, "snapshot"),
        )
        check(snap.size >= 0 and snap.chunk_size > 0, "snapshot: bad sizes")
        return snap
