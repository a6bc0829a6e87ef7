"""One backup session's writes: dedup, sealing into packs, index deltas, and the commit (the
lease is ``sessions``).

Commit order (the repository's one invariant): packs uploaded and read back, then an index delta
naming them, then the snapshot, each delta and the snapshot written only after the lease was
checked. Nothing referenced can be missing; a session killed at any point leaves at most
unreferenced packs (and possibly index deltas naming them, which is harmless: they exist and
were checked).

Memory stays bounded whatever the number of chunks: every ``PART_ENTRIES`` stored blobs go into
an index delta of their own (``index/<session>.<n>``), which the session's index then merges in,
so the set of chunks claimed by this session holds only those not yet in a delta.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from liferaft.crypto.aead import Sealer
from liferaft.errors import LeaseLost, ObjectMissing, StoreError
from liferaft.format import ChunkId, PackId, SnapshotId
from liferaft.format.damage import DamageRecord
from liferaft.format.index import Location
from liferaft.format.snapshot import Snapshot
from liferaft.repo import blobs, names
from liferaft.repo.condemned import condemned_packs
from liferaft.repo.index import ChunkIndex, DeltaPart, write_delta
from liferaft.repo.packer import Packer
from liferaft.repo.repository import Repository
from liferaft.repo.sessions import Lease

PART_ENTRIES = 65536
"""Blobs per index delta a session writes (3.5 MiB of plaintext)."""


class BackupWriter:
    """Stores chunks for one session. ``put`` is thread-safe."""

    def __init__(self, repo: Repository, index: ChunkIndex, command: str, lock_s: float | None = None) -> None:
        """lock_s: Object Lock for every object this session writes (None: the repository's
        setting; 0: none)."""
        self.repo = repo
        settings = repo.settings()
        self.index = index
        self.sealer = Sealer(repo.master)
        self.level = repo.config.compression_level
        self._claimed: set[ChunkId] = set()
        """Chunks this session stores that are in no index delta yet."""
        self._part = DeltaPart()
        self._part_lock = threading.Lock()
        self._adopted_used: set[ChunkId] = set()
        """Adopted chunks this session has indexed (bounded by what was adopted)."""
        self._parts = 0
        self._lock = threading.Lock()
        self.lease = Lease(repo.store, self.sealer, command, term_s=settings.lease_term_s)
        self.lock_s = settings.lock_s if lock_s is None else lock_s
        if self.lock_s:
            repo.store.set_lock(self.lock_s, names.LOCKED)
        self._pack_sizes = {PackId(bytes.fromhex(names.leaf(o.name))): o.size for o in repo.store.list(names.PACKS)}
        self._gone: set[PackId] = set()
        self._cut: set[tuple[ChunkId, PackId]] = set()
        """Damage found on the way (packs gone; the blobs of them, or past a pack's end, that this
        session looked for), recorded at the end."""
        self.condemned = condemned_packs(repo.store, repo.opener)
        """Packs a GC run condemned: read after the lease is written (GC lists sessions after it
        writes a record), never deduplicated against."""
        max_blob = repo.config.chunk_size + 1024  # zstd's worst case is raw + a frame header
        self.packer = Packer(repo.store, self.sealer, repo.opener, repo.config.pack_size, max_blob, self._stored)
        self.new_chunks = 0
        self.new_bytes = 0
        self.stored_bytes = 0

    def has(self, cid: ChunkId) -> bool:
        """Whether the repository holds the chunk in a pack that no GC run condemned (and that no
        damage record names: the index leaves those out, so damaged chunks are stored again).
        A chunk found only in a pack that no delta names (adopted from its footer: a run died
        before it indexed it) is indexed by this session, as if it had stored it."""
        loc = self.index.lookup(cid)
        if loc is None or loc.pack in self.condemned or not self._pack_holds(cid, loc):
            return False
        if self.index.adopted.get(cid) == loc:
            with self._part_lock:
                if cid not in self._adopted_used:
                    self._adopted_used.add(cid)
                    self._part.add(cid, loc)
        return True

    def _pack_holds(self, cid: ChunkId, loc: Location) -> bool:
        """Whether the pack a chunk would be deduplicated against is there, long enough: packs
        are listed once a session (one request per thousand on S3), and one not in that listing
        (a newer one, from another session) is looked up. A pack gone, or the blob past its end,
        is recorded as damage when the session ends, and the chunk is stored again."""
        with self._lock:
            size = self._pack_sizes.get(loc.pack)
        if size is None:
            try:
                size = self.repo.store.stat(names.pack(loc.pack)).size
            except ObjectMissing:
                size = 0
            with self._lock:
                self._pack_sizes[loc.pack] = size
        if loc.offset + loc.length <= size:
            return True
        with self._lock:
            if size == 0:
                self._gone.add(loc.pack)
            self._cut.add((cid, loc.pack))
        return False

    def _record_damage(self) -> None:
        with self._lock:
            gone, cut = sorted(self._gone), sorted(self._cut)
            self._gone, self._cut = set(), set()
        why = [f"pack {p.hex()[:16]} is missing" for p in gone] + [
            f"pack {p.hex()[:16]} is cut short" for p in {p for _, p in cut}
        ]
        if why:
            self.repo.record_damage(DamageRecord(tuple(gone), tuple(cut), tuple(why)))

    def put(self, cid: ChunkId, data: bytes | bytearray, flags: int = 0) -> bool:
        """Store a chunk unless the repository or this session has it; True when it was new."""
        if self.lease.lost:
            raise LeaseLost(detail=self.lease.lost)
        if self.has(cid):
            return False
        with self._lock:
            if cid in self._claimed:
                return False
            self._claimed.add(cid)
        plain, flags = blobs.compress(data, self.level, flags)
        stored = self.packer.add(cid, plain, len(data), flags)
        with self._lock:
            self.new_chunks += 1
            self.new_bytes += len(data)
            self.stored_bytes += stored
        return True

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Nothing is written to the repository inside this block: pack uploads handed over so
        far are finished first and the lease is not renewed. No put() may run inside."""
        with self.lease.hold:
            self.packer.settle()
            yield

    def _stored(self, located: list[tuple[ChunkId, Location]]) -> None:
        """A pack's blobs were uploaded and checked (on the packer's thread)."""
        with self._part_lock:
            for cid, loc in located:
                self._part.add(cid, loc)
            full = self._part.count >= PART_ENTRIES
        if full:
            written = self._write_part(hold=False)  # not under the lease's hold: quiet() waits for this thread
            self.index.refresh()  # this session's own delta now answers lookups
            with self._lock:
                self._claimed.difference_update(written.ids())

    def _write_part(self, hold: bool = True) -> DeltaPart:
        """The blobs stored since the last delta, as an index delta, once the packs are durable."""
        with self._part_lock:
            part, self._part = self._part, DeltaPart()
        if not part.count:
            return part
        store = self.repo.store
        store.sync()  # packs durable before anything names them
        self.lease.check(hold)
        name = write_delta(store, self.sealer, f"{self.sealer.session_id.hex()}.{self._parts}", part)
        self._checked_after(name, hold)
        self._parts += 1
        return part

    def _checked_after(self, name: str, hold: bool = True) -> None:
        """The lease checked again once name is written: a pause between the check before it and
        its write (during which GC may have taken the session for dead and deleted its packs)
        withdraws it, so that nothing names a pack GC deleted."""
        try:
            self.lease.check(hold)
        except LeaseLost as exc:
            try:
                self.repo.store.delete(name)
                self.repo.store.sync()
            except StoreError:
                pass  # it stays (append-only storage): verify checks what it references
            raise LeaseLost(detail=f"{exc.fields['detail']}; {name}, written meanwhile, was withdrawn") from None

    def commit(self, snap: Snapshot) -> SnapshotId:
        """Last index delta, then snapshot; each only while the lease holds (renewed and checked
        by the store's clock just before, and again after, see ``_checked_after``), so a session
        paused past its term never commits."""
        self.packer.finish()
        store = self.repo.store
        self._write_part()
        store.sync()
        self.lease.check()
        sid = self.repo.save_snapshot(self.sealer, snap)
        store.sync()
        self._checked_after(names.snapshot(sid))
        self._record_damage()
        self.lease.end()
        return sid

    def abort(self) -> None:
        self.packer.abort()
        self._record_damage()
        self.lease.end()
