"""Condemnation records in the store: written by GC, read by GC and by every backup.

A backup reads them all once its session object is written and never deduplicates against a
condemned pack's chunks; GC writes a record before it lists the sessions it names (see
``format.condemned``). A record that cannot be read is left out: no GC deletes by it, and a
backup that deduplicates against one of its packs is live when the next GC condemns that pack
again, so it is named there and waited for.
"""

from __future__ import annotations

from dataclasses import dataclass

from liferaft.crypto.aead import AuthenticationFailed, Opener, Sealer
from liferaft.errors import ObjectMissing
from liferaft.format import FormatError, PackId
from liferaft.format.condemned import CondemnedRecord
from liferaft.repo import names
from liferaft.store.base import Store

CONDEMNED_AD = b"liferaft condemned"


@dataclass(frozen=True, slots=True)
class Condemnation:
    name: str
    record: CondemnedRecord
    mtime: float
    """When it was written, by the store's clock."""


def load_all(store: Store, opener: Opener, damaged: list[str] | None = None) -> list[Condemnation]:
    found = []
    for info in sorted(store.list(names.CONDEMNED), key=lambda o: o.name):
        try:
            record = CondemnedRecord.from_bytes(opener.open(store.get(info.name), CONDEMNED_AD))
        except ObjectMissing:
            continue  # removed by the GC run that superseded it
        except (AuthenticationFailed, FormatError) as exc:
            if damaged is not None:
                damaged.append(f"{info.name} is unreadable ({exc}); nothing is deleted by it")
            continue
        found.append(Condemnation(info.name, record, info.mtime))
    return found


def condemned_packs(store: Store, opener: Opener) -> frozenset[PackId]:
    """Every pack any record condemns: a backup must not deduplicate against them."""
    return frozenset(p for c in load_all(store, opener) for p in c.record.packs)


def write(store: Store, sealer: Sealer, name: str, record: CondemnedRecord) -> None:
    store.put(name, sealer.seal(record.to_bytes(), CONDEMNED_AD))
    store.sync()
