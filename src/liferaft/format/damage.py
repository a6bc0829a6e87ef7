"""A damage record: stored blobs found damaged or missing, so that no run trusts them again
(docs/design.md, "Damage").

Canonical JSON, sealed; named ``damaged/<record id hex>``. ``packs``: packs found missing or
unreadable as a whole; ``blobs``: (chunk id, pack id) of single blobs whose content failed its
check. ``why``: what was found, for messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from liferaft.format import ID_SIZE, ChunkId, PackId, canonical, check


@dataclass(frozen=True, slots=True)
class DamageRecord:
    packs: tuple[PackId, ...]
    blobs: tuple[tuple[ChunkId, PackId], ...]
    why: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "liferaft": "damaged",
                "packs": [p.hex() for p in self.packs],
                "blobs": [[c.hex(), p.hex()] for c, p in self.blobs],
                "why": list(self.why),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> DamageRecord:
        obj = canonical.loads(data, "damaged")
        check(obj.get("liferaft") == "damaged", "damaged: wrong kind")

        def ident(text: object) -> bytes:
            check(isinstance(text, str) and len(text) == 2 * ID_SIZE, "damaged: bad id")
            assert isinstance(text, str)
            try:
                return bytes.fromhex(text)
            except ValueError:
                check(False, "damaged: id is not hex")
                raise AssertionError from None

        packs = canonical.field(obj, "packs", list, "damaged")
        blobs = canonical.field(obj, "blobs", list, "damaged")
        check(all(isinstance(b, list) and len(b) == 2 for b in blobs), "damaged: bad blob entry")
        why = obj.get("why", [])
        check(isinstance(why, list) and all(isinstance(w, str) for w in why), "damaged: bad reasons")
        return cls(
            tuple(PackId(ident(p)) for p in packs),
            tuple((ChunkId(ident(c)), PackId(ident(p))) for c, p in blobs),
            tuple(why),
        )
