"""GC: reclaim the packs no snapshot references, without ever losing one that a snapshot, or a
backup still running, may reference (docs/design.md, "Garbage collection").

One run, holding the maintenance lease:
1. reads the earlier condemnation records, builds a fresh index from the deltas (never a cache)
   and only then lists the packs (a delta names only packs written before it); a pack the index
   names that the listing lacks stops the run (an incomplete listing, or damage): nothing is
   deleted;
2. marks every pack that a snapshot's chunk map or chunks are in, snapshot by snapshot (each
   map piece once: unchanged stretches are shared between snapshots), then lists the snapshots
   again and marks those committed meanwhile; a chunk the index lacks, or a snapshot it cannot
   read, stops the run;
3. deletes a pack only when an earlier run condemned it, at least the safety margin ago by the
   store's clock, it is still unreferenced, and every session that was live when it was
   condemned has ended or lapsed: a backup that started before the condemnation may have
   deduplicated against it, one that started after never does (``BackupWriter.has``);
4. condemns the other unreferenced packs (not those younger than the margin, nor those an
   earlier record condemns and that wait for it: they keep their first condemnation's time): the
   record is written before the sessions are listed into it, so any backup either is named there
   or reads the record when it starts;
5. writes the index anew without the packs it deletes (consolidated deltas, 65 536 entries
   each), removes the old deltas, then deletes the packs, then the records it is done with. The
   lease is checked before each destructive step; a run stopped anywhere loses nothing and the
   next one carries on.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liferaft.crypto.aead import Sealer
from liferaft.errors import AppendOnly, CorruptRepository, DeleteRefused, MaintenanceAborted
from liferaft.format import UNSTORED, ChunkId, PackId, SnapshotId
from liferaft.format.condemned import CondemnedRecord
from liferaft.format.index import Location
from liferaft.ops.cancel import Cancel, check
from liferaft.ops.progress import NoProgress, Progress
from liferaft.repo import condemned, names
from liferaft.repo.image import SnapshotImage
from liferaft.repo.index import ChunkIndex, DeltaPart, write_delta
from liferaft.repo.repository import Repository
from liferaft.repo.sessions import LEASE_TERM_S, MAINTENANCE, Lease
from liferaft.repo.writer import PART_ENTRIES

SAFETY_MARGIN_S = 3600.0
"""Condemned packs wait at least this long (and for every session live at condemnation)."""
CHECK_EVERY = 64
"""Pack deletions between two lease checks."""


@dataclass(slots=True)
class GcResult:
    snapshots: int = 0
    packs: int = 0
    live_packs: int = 0
    condemned: int = 0
    """Unreferenced packs condemned by this run (deleted by a later one)."""
    waiting: int = 0
    """Of those, condemned before and not deletable yet (margin, or sessions still live)."""
    deleted: int = 0
    deleted_bytes: int = 0
    deltas_before: int = 0
    deltas_after: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def require_deletes(repo: Repository, what: str) -> None:
    """Refuse what (forget, gc) before it changes anything when the store may not delete:
    a probe object is written and deleted (it stays behind where the delete is refused)."""
    probe = names.session(os.urandom(16))
    repo.store.put(probe, b"liferaft: can this repository delete?")
    try:
        repo.store.delete(probe)
    except DeleteRefused:
        raise AppendOnly(what=what) from None


def gc(
    repo: Repository, safety_margin: float = SAFETY_MARGIN_S, dry_run: bool = False, progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> GcResult:  # fmt: skip
    """One GC run (see the module's text). dry_run: decide and report, write nothing."""
    started = time.monotonic()
    sealer = Sealer(repo.master)
    if not dry_run:
        require_deletes(repo, "gc")
    lease = None if dry_run else Lease(repo.store, sealer, "gc", exclusive=(MAINTENANCE, repo.opener))
    try:
        result = _run(repo, sealer, lease, safety_margin, dry_run, progress or NoProgress(), cancel)
    finally:
        if lease is not None:
            lease.end()
    result.seconds = time.monotonic() - started
    return result


def _run(
    repo: Repository, sealer: Sealer, lease: Lease | None, margin: float, dry_run: bool, progress: Progress,
    cancel: Cancel | None,
) -> GcResult:  # fmt: skip
    store = repo.store
    result = GcResult(dry_run=dry_run)
    now = lease.stamp if lease is not None else _store_now(repo)
    records = condemned.load_all(store, repo.opener, result.notes)
    with tempfile.TemporaryDirectory(prefix="liferaft-gc-") as tmp:
        index = repo.open_index(Path(tmp))
        try:
            # the packs are listed after the deltas: a delta is written only after its packs, so
            # every pack the index names was there before this listing began
            packs = {PackId(bytes.fromhex(names.leaf(o.name))): o for o in store.list(names.PACKS)}
            deltas = sorted(index.deltas())
            result.packs, result.deltas_before = len(packs), len(deltas)
            unlisted = [p for p in index.packs() if p not in packs]
            if unlisted:
                raise MaintenanceAborted(
                    f"{len(unlisted)} packs the index names are not in the store's listing (the listing was "
                    "incomplete, or packs are missing): nothing was deleted; run `liferaft verify`"
                )
            live = _mark(repo, index, result, progress, cancel)
            result.live_packs = len(live)
            unreferenced = {p for p in packs if p not in live}
            sessions = {o.name: o.mtime for o in store.list(names.SESSIONS)}

            def ended(name: str) -> bool:
                return name not in sessions or now - sessions[name] > LEASE_TERM_S

            ripe = [
                c for c in records
                if c.record.sessions is not None and now - c.mtime >= margin and all(map(ended, c.record.sessions))
            ]  # fmt: skip
            deletable = {p for c in ripe for p in c.record.packs if p in unreferenced}
            waiting = {p for c in records if c not in ripe for p in c.record.packs if p in unreferenced} - deletable
            condemn = {p for p in unreferenced - deletable - waiting if now - packs[p].mtime >= margin}
            result.condemned, result.waiting = len(condemn), len(waiting)
            result.deleted = len(deletable)
            result.deleted_bytes = sum(packs[p].size for p in deletable)
            if dry_run:
                result.deltas_after = result.deltas_before
                return result
            assert lease is not None
            check(cancel)
            _condemn(repo, sealer, lease, sorted(condemn))
            result.deltas_after = _consolidate(repo, sealer, lease, index, deltas, deletable)
        finally:
            index.close()
    for n, pack in enumerate(sorted(deletable)):
        if n % CHECK_EVERY == 0:
            lease.check()
        store.delete(names.pack(pack))
    store.sync()
    for c in ripe:  # done with: their packs are deleted, or referenced again
        store.delete(c.name)
    store.sync()
    return result


def _store_now(repo: Repository) -> float:
    """The store's time, for a dry run (which writes nothing else): the newest object's."""
    times = [o.mtime for prefix in (names.SNAPSHOTS, names.SESSIONS, names.INDEX) for o in repo.store.list(prefix)]
    return max(times, default=time.time())


def _mark(repo: Repository, index: ChunkIndex, result: GcResult, progress: Progress, cancel: Cancel | None) -> set[PackId]:
    """The packs every snapshot references, through its map pieces (each piece once)."""
    live: set[PackId] = set()
    pieces: set[ChunkId] = set()
    marked: set[SnapshotId] = set()
    for _ in range(2):  # then once more: snapshots committed while the first pass marked
        fresh = [sid for sid in repo.snapshot_ids() if sid not in marked]
        progress.start("gc: mark", len(fresh))
        try:
            for sid in fresh:
                check(cancel)
                try:
                    snap = repo.load_snapshot(sid)
                except CorruptRepository as exc:
                    raise MaintenanceAborted(f"{exc.message}: GC cannot tell what it references; nothing was deleted") from None
                with SnapshotImage(repo, snap, index) as image:
                    for j, pid in enumerate(snap.map_pieces):
                        live.add(_pack_of(repo, index, pid, sid))
                        if pid in pieces:
                            continue
                        pieces.add(pid)
                        for cid in image.piece(j):
                            if cid not in UNSTORED:
                                live.add(_pack_of(repo, index, cid, sid))
                marked.add(sid)
                progress.advance(1)
        finally:
            progress.finish()
    result.snapshots = len(marked)
    return live


def _pack_of(repo: Repository, index: ChunkIndex, cid: ChunkId, sid: SnapshotId) -> PackId:
    try:
        return repo.locate(index, cid).pack
    except CorruptRepository:
        raise MaintenanceAborted(
            f"snapshot {sid[:12]} references chunk {cid.hex()[:16]}, which no index delta holds: "
            "nothing was deleted; run `liferaft verify`"
        ) from None


def _condemn(repo: Repository, sealer: Sealer, lease: Lease, packs: list[PackId]) -> None:
    """This run's record: its packs first, then the sessions live once backups can see it."""
    if not packs:
        return
    name = names.condemned(sealer.session_id)
    lease.check()
    condemned.write(repo.store, sealer, name, CondemnedRecord(tuple(packs), None))
    listed = tuple(sorted(o.name for o in repo.store.list(names.SESSIONS) if o.name not in (lease.name, MAINTENANCE)))
    condemned.write(repo.store, sealer, name, CondemnedRecord(tuple(packs), listed))


def _consolidate(
    repo: Repository, sealer: Sealer, lease: Lease, index: ChunkIndex, old: list[str], dropped: set[PackId]
) -> int:  # fmt: skip
    """The index as few deltas, without the entries of the packs about to go; the old deltas
    (those listed at the start: deltas written since stay) removed. The number of deltas after."""
    if len(old) <= 1 and not dropped:
        return len(old)
    part, written = DeltaPart(), 0
    lease.check()
    for cid, pack, offset, length, raw, flags in index.rows():
        if pack in dropped:
            continue
        part.add(cid, Location(pack, offset, length, raw, flags))
        if part.count >= PART_ENTRIES:
            write_delta(repo.store, sealer, f"{sealer.session_id.hex()}.{written}", part)
            part, written = DeltaPart(), written + 1
    if part.count:
        write_delta(repo.store, sealer, f"{sealer.session_id.hex()}.{written}", part)
        written += 1
    lease.check()
    for name in old:
        repo.store.delete(name)
    repo.store.sync()
    return len(list(repo.store.list(names.INDEX)))
