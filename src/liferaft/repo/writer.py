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
from liferaft.errors import LeaseLost
from liferaft.format import ID_SIZE, INDEX_MAGIC, ChunkId, PackId, SnapshotId
from liferaft.format import index as index_fmt
from liferaft.format.index import Location
from liferaft.format.snapshot import Snapshot
from liferaft.repo import blobs, names
from liferaft.repo.index import INDEX_AD, ChunkIndex
from liferaft.repo.packer import Packer
from liferaft.repo.repository import Repository
from liferaft.repo.sessions import Lease

PART_ENTRIES = 65536
"""Blobs per index delta a session writes (3.5 MiB of plaintext)."""


class _Part:
    """The index entries of the blobs stored since the last delta, packed as the delta holds
    them (56 bytes each, no object per entry)."""

    def __init__(self) -> None:
        self.packs: dict[PackId, int] = {}
        self.entries = bytearray()
        self.count = 0

    def add(self, located: list[tuple[ChunkId, Location]]) -> None:
        for cid, loc in located:
            number = self.packs.setdefault(loc.pack, len(self.packs))
            self.entries += index_fmt.ENTRY.pack(cid, number, loc.offset, loc.length, loc.raw_length, loc.flags)
        self.count += len(located)

    def ids(self) -> Iterator[bytes]:
        step = index_fmt.ENTRY.size
        return (bytes(self.entries[at : at + ID_SIZE]) for at in range(0, len(self.entries), step))


class BackupWriter:
    """Stores chunks for one session. ``put`` is thread-safe."""

    def __init__(self, repo: Repository, index: ChunkIndex, command: str) -> None:
        self.repo = repo
        self.index = index
        self.sealer = Sealer(repo.master)
        self.level = repo.config.compression_level
        self._claimed: set[ChunkId] = set()
        """Chunks this session stores that are in no index delta yet."""
        self._part = _Part()
        self._parts = 0
        self._lock = threading.Lock()
        self.lease = Lease(repo.store, self.sealer, command)
        max_blob = repo.config.chunk_size + 1024  # zstd's worst case is raw + a frame header
        self.packer = Packer(repo.store, self.sealer, repo.opener, repo.config.pack_size, max_blob, self._stored)
        self.new_chunks = 0
        self.new_bytes = 0
        self.stored_bytes = 0

    def put(self, cid: ChunkId, data: bytes | bytearray, flags: int = 0) -> bool:
        """Store a chunk unless the repository or this session has it; True when it was new."""
        if self.lease.lost:
            raise LeaseLost(detail=self.lease.lost)
        if self.index.lookup(cid) is not None:
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
        self._part.add(located)
        if self._part.count >= PART_ENTRIES:
            written = self._write_part(hold=False)  # not under the lease's hold: quiet() waits for this thread
            self.index.refresh()  # this session's own delta now answers lookups
            with self._lock:
                self._claimed.difference_update(written.ids())

    def _write_part(self, hold: bool = True) -> _Part:
        """The blobs stored since the last delta, as an index delta, once the packs are durable."""
        part, self._part = self._part, _Part()
        if not part.count:
            return part
        store = self.repo.store
        store.sync()  # packs durable before anything names them
        self.lease.check(hold)
        body = index_fmt.encode_packed(INDEX_MAGIC, list(part.packs), part.entries)
        store.put(names.index(f"{self.sealer.session_id.hex()}.{self._parts}"), self.sealer.seal(body, INDEX_AD))
        store.sync()
        self._parts += 1
        return part

    def commit(self, snap: Snapshot) -> SnapshotId:
        """Last index delta, then snapshot; each only while the lease holds (renewed and checked
        by the store's clock just before), so a session paused past its term never commits."""
        self.packer.finish()
        store = self.repo.store
        self._write_part()
        store.sync()
        self.lease.check()
        sid = self.repo.save_snapshot(self.sealer, snap)
        store.sync()
        self.lease.end()
        return sid

    def abort(self) -> None:
        self.packer.abort()
        self.lease.end()
