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
5. repacks packs that the snapshots reference little of (``repack_below``): their referenced
   blobs are copied as they are into new packs, and the old packs are condemned;
6. writes the index anew without the packs it deletes and the old entries of the blobs it
   repacked (consolidated deltas, 65 536 entries each), removes the old deltas, then deletes the
   packs, then the records it is done with. The
   lease is checked before each destructive step; a run stopped anywhere loses nothing and the
   next one carries on.

Object Lock: a pack or delta the server still retains is skipped and its record kept, so a run
after the retention date deletes it; while an old delta is retained, no pack it names is
deleted (the delta would name a missing pack). What GC writes is retained like a backup's.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liferaft.crypto.aead import Sealer
from liferaft.errors import AppendOnly, CorruptRepository, DeleteRefused, MaintenanceAborted, ObjectMissing
from liferaft.format import UNSTORED, ChunkId, PackId, SnapshotId, envelope
from liferaft.format.chunkmap import decode_piece
from liferaft.format.condemned import CondemnedRecord
from liferaft.format.index import Location
from liferaft.ops.cancel import Cancel, check
from liferaft.ops.progress import NoProgress, Progress
from liferaft.repo import condemned, damage, names
from liferaft.repo.image import SnapshotImage
from liferaft.repo.index import ChunkIndex, DeltaPart, write_delta
from liferaft.repo.packer import Packer
from liferaft.repo.repository import Repository
from liferaft.repo.sessions import MAINTENANCE, Lease, lapsed
from liferaft.repo.writer import PART_ENTRIES
from liferaft.store.base import Store

CHECK_EVERY = 64
"""Pack deletions between two lease checks."""
REPACK_BELOW = 0.5
"""A pack whose snapshots reference less than this fraction of it is repacked."""
REPACK_MOST = 16
"""Packs repacked in one run, at most: bounds the run's memory (a set of their chunk ids)."""


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
    repacked: int = 0
    """Mostly unreferenced packs whose live blobs went into new packs (then condemned)."""
    repacked_bytes: int = 0
    deltas_before: int = 0
    deltas_after: int = 0
    locked: int = 0
    """Packs due for deletion that Object Lock still retains (deleted by a run after their date)."""
    locked_until: float = 0.0
    margin: float = 0.0
    dry_run: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def require_deletes(repo: Repository, what: str) -> None:
    """Refuse what (forget, gc) before it changes anything when the store may not delete:
    a probe object is written and deleted (it stays behind where the delete is refused)."""
    probe = names.probe(os.urandom(16))
    repo.store.put(probe, b"liferaft: can this repository delete?")
    try:
        repo.store.delete(probe)
    except DeleteRefused:
        raise AppendOnly(what=what) from None


def gc(
    repo: Repository, safety_margin: float | None = None, dry_run: bool = False, progress: Progress | None = None,
    cancel: Cancel | None = None, repack_below: float = REPACK_BELOW,
) -> GcResult:  # fmt: skip
    """One GC run (see the module's text). safety_margin: None for the repository's setting;
    dry_run: decide and report, write nothing; repack_below: packs less live than this fraction
    are repacked (0: none)."""
    started = time.monotonic()
    sealer = Sealer(repo.master)
    settings = repo.settings()
    margin = settings.safety_margin_s if safety_margin is None else safety_margin
    if not dry_run:
        require_deletes(repo, "gc")
    term = settings.lease_term_s
    if settings.lock_s and not dry_run:
        repo.store.set_lock(settings.lock_s, names.LOCKED)  # what it writes is retained like a backup's
    lease = None if dry_run else Lease(repo.store, sealer, "gc", exclusive=(MAINTENANCE, repo.opener), term_s=term)
    try:
        result = _run(repo, sealer, lease, margin, term, dry_run, progress or NoProgress(), cancel, repack_below)
    finally:
        if lease is not None:
            lease.end()
    result.seconds = time.monotonic() - started
    return result


def _run(
    repo: Repository, sealer: Sealer, lease: Lease | None, margin: float, term: float, dry_run: bool,
    progress: Progress, cancel: Cancel | None, repack_below: float,
) -> GcResult:  # fmt: skip
    store = repo.store
    result = GcResult(dry_run=dry_run, margin=margin)
    now = lease.stamp if lease is not None else _store_now(repo)
    records = condemned.load_all(store, repo.opener, result.notes)
    with tempfile.TemporaryDirectory(prefix="liferaft-gc-") as tmp:
        stored: dict[PackId, int] = {}  # blob bytes per pack by the deltas, duplicates included
        index = repo.open_index(Path(tmp), stored)
        try:
            # the packs are listed after the deltas: a delta is written only after its packs, so
            # every pack the index names was there before this listing began
            if index.unreadable:
                raise MaintenanceAborted(
                    f"{len(index.unreadable)} index deltas are unreadable ({', '.join(sorted(index.unreadable)[:3])}): "
                    "nothing was deleted; run `liferaft repair` first, which rebuilds them from the packs"
                )
            packs = {PackId(bytes.fromhex(names.leaf(o.name))): o for o in store.list(names.PACKS)}
            deltas = sorted(index.deltas())
            result.packs, result.deltas_before = len(packs), len(deltas)
            unlisted = [p for p in index.packs() if p not in packs]
            if unlisted:
                raise MaintenanceAborted(
                    f"{len(unlisted)} packs the index names are not in the store's listing (the listing was "
                    "incomplete, or packs are missing): nothing was deleted; run `liferaft verify`"
                )
            live, pieces = _mark(repo, index, result, progress, cancel)
            result.live_packs = len(live)
            unreferenced = {p for p in packs if p not in live}
            sessions = {o.name: o.mtime for o in store.list(names.SESSIONS) if not names.leaf(o.name).startswith(names.PROBE)}

            def ended(name: str) -> bool:
                return name not in sessions or lapsed(store, repo.opener, name, now - sessions[name], term)

            # a record without its sessions was left by a run killed while it wrote it: this run
            # (which holds the lease that run held) condemns its packs anew and removes it
            abandoned = [c for c in records if c.record.sessions is None]
            complete = [c for c in records if c.record.sessions is not None]
            ripe = [c for c in complete if now - c.mtime >= margin and all(map(ended, c.record.sessions or ()))]
            deletable = {p for c in ripe for p in c.record.packs if p in unreferenced}
            waiting = {p for c in complete if c not in ripe for p in c.record.packs if p in unreferenced} - deletable
            condemn = {p for p in unreferenced - deletable - waiting if now - packs[p].mtime >= margin}
            result.condemned, result.waiting = len(condemn), len(waiting)
            result.deleted = len(deletable)
            result.deleted_bytes = sum(packs[p].size for p in deletable)
            sparse = sorted(
                (p for p in live if p in packs and now - packs[p].mtime >= margin and live[p] < repack_below * stored.get(p, 0)),
                key=lambda p: live[p] / stored[p],
            )[:REPACK_MOST]
            result.repacked = len(sparse)
            if dry_run:
                result.deltas_after = result.deltas_before
                return result
            assert lease is not None
            check(cancel)
            moved: set[ChunkId] = set()
            if sparse:  # their live blobs go into new packs first; then they are condemned like garbage
                moved, result.repacked_bytes = _repack(repo, sealer, lease, index, pieces, set(sparse))
            _condemn(repo, sealer, lease, sorted(condemn | set(sparse)))
            dropped = set(sparse)

            def gone(cid: ChunkId, pack: PackId) -> bool:
                """An entry the new index leaves out: of a pack to delete, or of a blob repacked
                (its new entry is in the repack's delta)."""
                return pack in deletable or (pack in dropped and cid in moved)

            result.deltas_after, kept = _consolidate(repo, sealer, lease, index, deltas, gone, bool(deletable or moved))
        finally:
            index.close()
    locked: set[PackId] = set()
    if kept:  # old deltas still name these packs: deleting them would leave entries without a pack
        locked = set(deletable)
        result.notes.append(
            f"{len(kept)} old index deltas are under Object Lock; their packs are deleted once the lock has passed"
        )
    for n, pack in enumerate(sorted(deletable - locked)):
        if n % CHECK_EVERY == 0:
            lease.check()
        try:
            store.delete(names.pack(pack))
        except DeleteRefused:
            locked.add(pack)
    store.sync()
    if locked:
        result.locked, result.deleted = len(locked), result.deleted - len(locked)
        result.deleted_bytes -= sum(packs[p].size for p in locked)
        result.locked_until = max(_locked_until(store, [names.pack(p) for p in locked] + kept))
    for c in ripe + abandoned:  # done with: their packs are deleted, referenced again, or condemned anew
        if c in ripe and locked.intersection(c.record.packs):
            continue  # kept: a later run deletes its locked packs
        store.delete(c.name)
    remaining = set(packs) - deletable | locked
    for name, record in damage.records(store, repo.opener):  # about packs all deleted now: moot
        if not damage.packs_of(record) & remaining:
            store.delete(name)
    kept_snapshots = set(repo.snapshot_ids())
    for o in store.list(names.DRILLS):  # the verdicts of forgotten snapshots
        if names.leaf(o.name).split(".")[0] not in kept_snapshots:
            store.delete(o.name)
    for o in store.list(names.SESSIONS):  # probes left by runs killed between their put and delete
        if names.leaf(o.name).startswith(names.PROBE) and now - o.mtime > term:
            store.delete(o.name)
    store.sync()
    return result


def _locked_until(store: Store, objects: list[str]) -> list[float]:
    """When Object Lock lets these go (0 for any gone or not locked)."""
    found = [0.0]
    for name in objects[:64]:  # enough to tell the date; a HEAD each
        try:
            found.append(store.stat(name).locked_until)
        except ObjectMissing:
            pass
    return found


def _store_now(repo: Repository) -> float:
    """The store's time, for a dry run (which writes nothing else): the newest object's."""
    times = [o.mtime for prefix in (names.SNAPSHOTS, names.SESSIONS, names.INDEX) for o in repo.store.list(prefix)]
    return max(times, default=time.time())


def _mark(
    repo: Repository, index: ChunkIndex, result: GcResult, progress: Progress, cancel: Cancel | None
) -> tuple[dict[PackId, int], set[ChunkId]]:  # fmt: skip
    """Every pack the snapshots reference, with an upper bound of the bytes of it they do (a
    chunk that two distinct map pieces name counts twice), through their map pieces, each
    distinct piece once; and those pieces' ids."""
    live: dict[PackId, int] = {}
    pieces: set[ChunkId] = set()
    marked: set[SnapshotId] = set()

    lost = index.damage.cids

    def mark(cid: ChunkId, sid: SnapshotId) -> None:
        if cid in lost and index.lookup(cid) is None:
            return  # recorded damaged with no good copy: nothing of it to keep (verify names the loss)
        loc = _loc_of(repo, index, cid, sid)
        live[loc.pack] = live.get(loc.pack, 0) + loc.length

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
                        if pid in pieces:
                            continue
                        pieces.add(pid)
                        mark(pid, sid)
                        for cid in image.piece(j):
                            if cid not in UNSTORED:
                                mark(cid, sid)
                marked.add(sid)
                progress.advance(1)
        finally:
            progress.finish()
    result.snapshots = len(marked)
    return live, pieces


def _loc_of(repo: Repository, index: ChunkIndex, cid: ChunkId, sid: SnapshotId) -> Location:
    try:
        return repo.locate(index, cid)
    except CorruptRepository:
        raise MaintenanceAborted(
            f"snapshot {sid[:12]} references chunk {cid.hex()[:16]}, which no index delta holds: "
            "nothing was deleted; run `liferaft verify --read-data`, which records what is lost, or `liferaft repair`"
        ) from None


def _repack(
    repo: Repository, sealer: Sealer, lease: Lease, index: ChunkIndex, pieces: set[ChunkId], sparse: set[PackId]
) -> tuple[set[ChunkId], int]:  # fmt: skip
    """Copy the blobs of sparse that a marked snapshot references into new packs (sealed as they
    are: a blob's envelope names its session), and index them in a delta of this run: (the
    chunks moved, the bytes copied). A chunk of theirs that only a snapshot committed since the
    marking names keeps its old entry, so its pack stays live for the next run."""
    entries: dict[ChunkId, Location] = {}
    for cid, pack, offset, length, raw, flags in index.rows():
        if pack in sparse:
            entries[cid] = Location(pack, offset, length, raw, flags)
    wanted: set[ChunkId] = {pid for pid in pieces if pid in entries}
    for pid in pieces:  # which of their chunks a snapshot names, piece by piece
        piece = decode_piece(repo.read_chunk(pid, repo.locate(index, pid), check_id=True))
        wanted.update(cid for cid in piece if cid in entries)
    part = DeltaPart()

    def stored(located: list[tuple[ChunkId, Location]]) -> None:
        for cid, loc in located:
            part.add(cid, loc)

    max_blob = repo.config.chunk_size + 1024 + envelope.OVERHEAD
    packer = Packer(repo.store, sealer, repo.opener, repo.config.pack_size, max_blob, stored)
    copied = 0
    try:
        for pack in sorted(sparse):
            lease.check()
            data = memoryview(repo.store.get(names.pack(pack)))
            keep = sorted(((c, loc) for c, loc in entries.items() if loc.pack == pack and c in wanted), key=lambda e: e[1].offset)
            for cid, loc in keep:
                copied += packer.add_sealed(cid, data[loc.offset : loc.offset + loc.length], loc.raw_length, loc.flags)
        packer.finish()
    except BaseException:
        packer.abort()
        raise
    if part.count:
        lease.check()
        write_delta(repo.store, sealer, f"{sealer.session_id.hex()}.repack", part)
    return {ChunkId(c) for c in part.ids()}, copied


def _condemn(repo: Repository, sealer: Sealer, lease: Lease, packs: list[PackId]) -> None:
    """This run's record: its packs first, then the sessions live once backups can see it."""
    if not packs:
        return
    name = names.condemned(sealer.session_id)
    lease.check()
    condemned.write(repo.store, sealer, name, CondemnedRecord(tuple(packs), None))
    listed = tuple(
        sorted(
            o.name for o in repo.store.list(names.SESSIONS)
            if o.name not in (lease.name, MAINTENANCE) and not names.leaf(o.name).startswith(names.PROBE)
        )
    )  # fmt: skip
    condemned.write(repo.store, sealer, name, CondemnedRecord(tuple(packs), listed))


def _consolidate(
    repo: Repository, sealer: Sealer, lease: Lease, index: ChunkIndex, old: list[str], gone: Callable[[ChunkId, PackId], bool],
    dropping: bool,
) -> tuple[int, list[str]]:  # fmt: skip
    """The index as few deltas, without the entries gone() leaves out; the old deltas (those
    listed at the start: deltas written since stay) removed. The number of deltas after, and
    the old ones Object Lock kept."""
    if len(old) <= 1 and not dropping:
        return len(old), []
    part, written = DeltaPart(), 0
    lease.check()
    for cid, pack, offset, length, raw, flags in index.rows():
        if gone(cid, pack):
            continue
        part.add(cid, Location(pack, offset, length, raw, flags))
        if part.count >= PART_ENTRIES:
            write_delta(repo.store, sealer, f"{sealer.session_id.hex()}.{written}", part)
            part, written = DeltaPart(), written + 1
    if part.count:
        write_delta(repo.store, sealer, f"{sealer.session_id.hex()}.{written}", part)
        written += 1
    lease.check()
    kept = []
    for name in old:
        try:
            repo.store.delete(name)
        except DeleteRefused:
            kept.append(name)
    repo.store.sync()
    return len(list(repo.store.list(names.INDEX))), kept
