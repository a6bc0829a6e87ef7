"""Drill verdicts in the store (``drills/<snapshot id>.<record id>``, sealed): written by
``liferaft drill``, read by ``snapshots`` and ``show``. Only names are listed to learn which
snapshots have a verdict; a record is read where its verdict is shown."""

from __future__ import annotations

import os

from liferaft.crypto.aead import AuthenticationFailed, Opener, Sealer
from liferaft.errors import ObjectMissing
from liferaft.format import FormatError
from liferaft.format.drill import DrillVerdict
from liferaft.repo import names
from liferaft.store.base import Store

DRILL_AD = b"liferaft drill"


def record(store: Store, sealer: Sealer, verdict: DrillVerdict) -> str:
    name = names.drill(verdict.snapshot_id, os.urandom(16))
    store.put(name, sealer.seal(verdict.to_bytes(), DRILL_AD))
    store.sync()
    return name


def latest(store: Store, opener: Opener, warnings: list[str] | None = None) -> dict[str, DrillVerdict]:
    """The newest readable verdict of each snapshot drilled; an unreadable record is left out
    (warned)."""
    found: dict[str, DrillVerdict] = {}
    for info in store.list(names.DRILLS):
        try:
            verdict = DrillVerdict.from_bytes(opener.open(store.get(info.name), DRILL_AD))
        except ObjectMissing:
            continue
        except (AuthenticationFailed, FormatError) as exc:
            if warnings is not None:
                warnings.append(f"{info.name} is unreadable ({exc}); left out")
            continue
        known = found.get(verdict.snapshot_id)
        if known is None or verdict.time > known.time:
            found[verdict.snapshot_id] = verdict
    return found
