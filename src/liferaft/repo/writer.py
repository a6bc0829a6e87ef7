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
from liferaft.errors import LeaseLost, StoreError
from liferaft.format import ChunkId, SnapshotId
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
        self._parts = 0
        self._lock = threading.Lock()
        self.lease = Lease(repo.store, self.sealer, command, term_s=settings.lease_term_s)
        self.lock_s = settings.lock_s if lock_s is None else lock_s
        if self.lock_s:
            repo.store.set_lock(self.lock_s, names.LOCKED)
        self.condemned = condemned_packs(repo.store, repo.opener)
        """Packs a GC run condemned: read after the lease is written (GC lists sessions after it
        writes a record), never deduplicated against."""
        max_blob = repo.config.chunk_size + 1024  # zstd's worst case is raw + a frame header
        self.packer = Packer(repo.store, self.sealer, repo.opener, repo.config.pack_size, max_blob, self._stored)
        self.new_chunks = 0
        self.new_bytes = 0
        self.stored_bytes = 0

    def has(self, cid: ChunkId) -> bool:
        """Whether the repository holds the chunk in a pack that no GC run condemned."""
        loc = self.index.lookup(cid)
        return loc is not None and loc.pack not in self.condemned

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
        for cid, loc in located:
            self._part.add(cid, loc)
        if self._part.count >= PART_ENTRIES:
            written = self._write_part(hold=False)  # not under the lease's hold: quiet() waits for this thread
            self.index.refresh()  # this session's own delta now answers lookups
            with self._lock:
                self._claimed.difference_update(written.ids())

    def _write_part(self, hold: bool = True) -> DeltaPart:
        """The blobs stored since the last delta, as an index delta, once the packs are durable."""
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
        self.lease.end()
        return sid

    def abort(self) -> None:
        self.packer.abort()
        self.lease.end()
