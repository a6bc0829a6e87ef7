"""Damage records in the store: written by whatever run finds a blob damaged or missing
(verify, restore), read by every index build, which leaves those blobs out. So the next backup
of a source that holds the same data stores it again, and every snapshot that shares it restores
again: damage heals instead of spreading (Proxmox Backup Server's ``.bad`` chunks do the same).
``repair`` checks recorded blobs again and removes records that prove wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from liferaft.crypto.aead import AuthenticationFailed, Opener, Sealer
from liferaft.errors import ObjectMissing, StoreError
from liferaft.format import ChunkId, FormatError, PackId
from liferaft.format.damage import DamageRecord
from liferaft.repo import names
from liferaft.store.base import Store

DAMAGE_AD = b"liferaft damaged"


@dataclass
class Damage:
    """Every record's damage, merged."""

    names: frozenset[str] = frozenset()
    packs: set[PackId] = field(default_factory=set)
    blobs: set[tuple[ChunkId, PackId]] = field(default_factory=set)
    why: list[str] = field(default_factory=list)

    def bad(self, cid: bytes, pack: bytes) -> bool:
        return pack in self.packs or (cid, pack) in self.blobs

    @property
    def cids(self) -> frozenset[bytes]:
        """The chunks with a damaged copy (another copy may be good)."""
        return frozenset(c for c, _ in self.blobs)

    def __bool__(self) -> bool:
        return bool(self.packs or self.blobs)


def records(store: Store, opener: Opener, warnings: list[str] | None = None) -> list[tuple[str, DamageRecord]]:
    """Every readable damage record, with its name; an unreadable one is left out (warned)."""
    found = []
    for info in sorted(store.list(names.DAMAGED), key=lambda o: o.name):
        try:
            found.append((info.name, DamageRecord.from_bytes(opener.open(store.get(info.name), DAMAGE_AD))))
        except ObjectMissing:
            continue  # removed by repair or gc meanwhile
        except (AuthenticationFailed, FormatError) as exc:
            if warnings is not None:
                warnings.append(f"{info.name} is unreadable ({exc}); left out")
    return found


def load(store: Store, opener: Opener, warnings: list[str] | None = None) -> Damage:
    found = Damage()
    listed = []
    for name, record in records(store, opener, warnings):
        listed.append(name)
        found.packs.update(record.packs)
        found.blobs.update(record.blobs)
        found.why.extend(record.why)
    found.names = frozenset(listed)
    return found


def packs_of(record: DamageRecord) -> set[PackId]:
    """The packs a record is about: once all are gone (GC deleted them), it is moot."""
    return set(record.packs) | {p for _, p in record.blobs}


def record(store: Store, sealer: Sealer, rec: DamageRecord) -> str | None:
    """Write a damage record; its name, or None where the store took no write (read-only
    media: the damage is reported all the same, only not remembered)."""
    if not rec.packs and not rec.blobs:
        return None
    name = names.damaged(os.urandom(16))
    try:
        store.put(name, sealer.seal(rec.to_bytes(), DAMAGE_AD))
        store.sync()
    except StoreError:
        return None
    return name
