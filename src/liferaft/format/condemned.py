"""A condemnation record: the packs one GC run found unreferenced, and the sessions that were
live when it condemned them (docs/design.md, "Garbage collection").

Canonical JSON, sealed; named ``condemned/<GC session id hex>``. ``sessions`` is None while the
record is being made (the packs are written first, then the sessions listed): such a record
already keeps backups from deduplicating against its packs, but no later run deletes by it.
"""

from __future__ import annotations

from dataclasses import dataclass

from liferaft.format import ID_SIZE, PackId, canonical, check


@dataclass(frozen=True, slots=True)
class CondemnedRecord:
    packs: tuple[PackId, ...]
    sessions: tuple[str, ...] | None
    """Names of the session objects present once the record was written; None: not yet listed."""

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "liferaft": "condemned",
                "packs": [p.hex() for p in self.packs],
                "sessions": None if self.sessions is None else list(self.sessions),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CondemnedRecord:
        obj = canonical.loads(data, "condemned")
        check(obj.get("liferaft") == "condemned", "condemned: wrong kind")
        packs = canonical.field(obj, "packs", list, "condemned")
        check(all(isinstance(p, str) and len(p) == 2 * ID_SIZE for p in packs), "condemned: bad pack id")
        try:
            ids = tuple(PackId(bytes.fromhex(p)) for p in packs)
        except ValueError:
            check(False, "condemned: pack id is not hex")
        check("sessions" in obj, "condemned: missing field 'sessions'")
        sessions = obj["sessions"]
        listed = isinstance(sessions, list) and all(isinstance(s, str) for s in sessions)
        check(sessions is None or listed, "condemned: bad sessions")
        return cls(ids, None if sessions is None else tuple(sessions))
