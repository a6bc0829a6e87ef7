"""``liferaft repair``: make the index and the damage records true again, from the packs alone.

The design promises that the index can always be rebuilt from the pack footers; repair does it:
1. under the maintenance lease (one repair or gc at a time), it lists the deltas and reads every
   pack whole: its footer, and every blob the footer lists (or, with the footer unreadable, every
   blob a readable delta places in it), each opened and hashed back to its id;
2. the good blobs of a pack that is not sound as a whole (its bytes no longer match its name, its
   footer does not open, or a blob in it is damaged) are salvaged: copied, sealed as they are,
   into new packs;
3. it writes a new index of every good blob (deltas of 65 536 entries), then removes the deltas
   listed at the start (one a backup writes meanwhile stays): a delta lost, unreadable or naming
   what is gone is replaced by the truth;
4. it records the blobs damaged now and removes the damage records it replaces, so a recorded blob
   that reads well again (a pack back from a disk that was offline) is trusted again;
5. it reports which snapshots still lack data; a new backup of their source heals them.

It deletes no pack: a salvaged pack is no longer indexed, so GC condemns and removes it in its two
runs, as it does any unreferenced pack. Stopped anywhere (``kill -9``), it loses nothing: its new
packs and deltas only add to what is there, and the next run finishes the job.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import zstandard

from liferaft.crypto.aead import AuthenticationFailed, Sealer
from liferaft.errors import ObjectMissing
from liferaft.format import ChunkId, FormatError, PackId, envelope
from liferaft.format.damage import DamageRecord
from liferaft.format.index import Location
from liferaft.ops.cancel import Cancel, check
from liferaft.ops.gc import require_deletes
from liferaft.ops.pipeline import ordered_map
from liferaft.ops.progress import NoProgress, Progress
from liferaft.ops.verify import Loss, snapshot_loss
from liferaft.repo import blobs, damage, names
from liferaft.repo.index import ChunkIndex, DeltaPart, delta_names, write_delta
from liferaft.repo.packer import Packer, check_footer, pack_id_of
from liferaft.repo.repository import Repository
from liferaft.repo.sessions import MAINTENANCE, Lease
from liferaft.repo.writer import PART_ENTRIES
from liferaft.store.base import ObjectInfo


@dataclass(slots=True)
class RepairResult:
    dry_run: bool = False
    packs: int = 0
    bytes_read: int = 0
    blobs: int = 0
    """Good blobs, indexed anew."""
    damaged_blobs: int = 0
    salvaged_packs: int = 0
    """Packs not sound as a whole whose good blobs went into new packs."""
    salvaged_blobs: int = 0
    deltas_before: int = 0
    deltas_after: int = 0
    cleared: int = 0
    """Blobs a damage record named that read well: trusted again."""
    incomplete: list[Loss] = field(default_factory=list)
    """Snapshots that still lack data (a new backup of their source heals them)."""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Pack:
    pack: PackId
    size: int
    good: list[tuple[ChunkId, Location]]
    bad: list[ChunkId]
    data: bytes | None
    """The pack's bytes while its good blobs are to be salvaged; None for a sound pack."""


def repair(
    repo: Repository, dry_run: bool = False, progress: Progress | None = None, cancel: Cancel | None = None
) -> RepairResult:
    """One repair (see the module's text); dry_run: read and report, write nothing."""
    progress = progress or NoProgress()
    started = time.monotonic()
    result = RepairResult(dry_run=dry_run)
    sealer = Sealer(repo.master)
    if not dry_run:
        require_deletes(repo, "repair")
    term = repo.settings().lease_term_s
    lease = None if dry_run else Lease(repo.store, sealer, "repair", exclusive=(MAINTENANCE, repo.opener), term_s=term)
    try:
        with tempfile.TemporaryDirectory(prefix="liferaft-repair-") as tmp:
            _run(repo, sealer, lease, result, Path(tmp), progress, cancel)
    finally:
        if lease is not None:
            lease.end()
    result.seconds = time.monotonic() - started
    return result


class _Index:
    """The new index, written as it grows (nothing with dry_run)."""

    def __init__(self, repo: Repository, sealer: Sealer, lease: Lease | None) -> None:
        self.repo, self.sealer, self.lease = repo, sealer, lease
        self.part, self.written, self.count = DeltaPart(), 0, 0

    def add(self, cid: ChunkId, loc: Location) -> None:
        self.part.add(cid, loc)
        self.count += 1
        if self.part.count >= PART_ENTRIES:
            self.flush()

    def flush(self) -> None:
        if self.part.count and self.lease is not None:
            self.lease.check()
            write_delta(self.repo.store, self.sealer, f"{self.sealer.session_id.hex()}.{self.written}", self.part)
            self.written += 1
        self.part = DeltaPart()


def _run(
    repo: Repository, sealer: Sealer, lease: Lease | None, result: RepairResult, tmp: Path, progress: Progress,
    cancel: Cancel | None,
) -> None:  # fmt: skip
    store = repo.store
    old_deltas = delta_names(store, result.notes)
    old_damage = damage.load(store, repo.opener, result.notes)
    result.deltas_before = len(old_deltas)
    new = _Index(repo, sealer, lease)
    bad: set[tuple[ChunkId, PackId]] = set()
    known = repo.open_index(tmp / "old")  # what readable deltas say: for packs whose footer is gone
    salvaged: list[tuple[ChunkId, Location]] = []
    max_blob = repo.config.chunk_size + 1024 + envelope.OVERHEAD
    packer = None if lease is None else Packer(store, sealer, repo.opener, repo.config.pack_size, max_blob, salvaged.extend)
    try:
        listed = sorted(store.list(names.PACKS), key=lambda o: o.name)
        progress.start("repair: read every pack", sum(o.size for o in listed))
        try:
            for p in ordered_map(lambda o: _read(repo, known, o), listed, workers=2, window=4, cancel=cancel):
                result.packs += 1
                result.bytes_read += p.size
                progress.advance(p.size)
                bad.update((c, p.pack) for c in p.bad)
                result.cleared += sum((c, p.pack) in old_damage.blobs for c, _ in p.good)
                if p.data is None:
                    for cid, loc in p.good:
                        new.add(cid, loc)
                    continue
                result.salvaged_packs += 1
                result.salvaged_blobs += len(p.good)
                if packer is not None:
                    check(cancel)
                    for cid, loc in p.good:
                        packer.add_sealed(
                            cid, memoryview(p.data)[loc.offset : loc.offset + loc.length], loc.raw_length, loc.flags
                        )
        finally:
            progress.finish()
        if packer is not None:
            packer.finish()
    except BaseException:
        if packer is not None:
            packer.abort()
        raise
    finally:
        known.close()
    for cid, loc in salvaged:
        new.add(cid, loc)
    new.flush()
    result.blobs, result.damaged_blobs = new.count, len(bad)
    if lease is not None:  # the new index is complete: what it replaces goes
        lease.check()
        if bad:
            damage.record(store, sealer, DamageRecord((), tuple(sorted(bad)), ("found damaged by repair",)))
        for name in sorted(old_damage.names):
            store.delete(name)
        lease.check()
        for name in old_deltas:
            store.delete(name)
        store.sync()
        result.deltas_after = len(delta_names(store))
    else:
        result.deltas_after = result.deltas_before
    _report(repo, result, tmp / "new", cancel)


def _read(repo: Repository, known: ChunkIndex, info: ObjectInfo) -> _Pack:
    """One pack, read whole and checked blob by blob."""
    pack = PackId(bytes.fromhex(names.leaf(info.name)))
    try:
        data = repo.store.get(info.name)
    except ObjectMissing:
        return _Pack(pack, 0, [], [], None)  # deleted since the listing (by GC): nothing to index
    try:
        footer = check_footer(repo.opener, data)
        entries = [(e.chunk_id, Location(pack, e.offset, e.length, e.raw_length, e.flags)) for e in footer]
        readable = True
    except (AuthenticationFailed, FormatError):
        entries, readable = list(_rows(known, pack)), False
    good: list[tuple[ChunkId, Location]] = []
    bad: list[ChunkId] = []
    for cid, loc in entries:
        try:
            plain = blobs.open_chunk(repo.opener, cid, data[loc.offset : loc.offset + loc.length], loc.flags, loc.raw_length)
            intact = len(plain) == loc.raw_length and repo.ids.chunk_id(plain) == cid
        except (AuthenticationFailed, zstandard.ZstdError, FormatError, ValueError):
            intact = False
        if intact:
            good.append((cid, loc))
        else:
            bad.append(cid)
    sound = readable and not bad and pack_id_of(data) == pack
    return _Pack(pack, len(data), good, bad, None if sound else data)


def _rows(index: ChunkIndex, pack: PackId) -> Iterator[tuple[ChunkId, Location]]:
    for cid, p, offset, length, raw, flags in index.rows():
        if p == pack:
            yield cid, Location(p, offset, length, raw, flags)


def _report(repo: Repository, result: RepairResult, tmp: Path, cancel: Cancel | None) -> None:
    """The snapshots that still lack data, by the index as it is now."""
    index = repo.open_index(tmp)
    try:
        for sid in repo.snapshot_ids():
            check(cancel)
            loss = snapshot_loss(repo, index, sid, repo.load_snapshot(sid), None)
            if loss is not None:
                result.incomplete.append(loss)
    finally:
        index.close()
