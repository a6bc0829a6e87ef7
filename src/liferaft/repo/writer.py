"""One backup session's writes: dedup, sealing into packs, the lease, and the commit.

Commit order (the repository's one invariant): every pack uploaded and read back, then the
session's index delta, then the snapshot. Nothing referenced can be missing; a session killed at
any point leaves at most unreferenced packs (and possibly an index delta naming them, which is
harmless: they exist and were checked).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from liferaft.crypto.aead import Sealer
from liferaft.errors import StoreError
from liferaft.format import INDEX_MAGIC, ChunkId, SnapshotId
from liferaft.format import index as index_fmt
from liferaft.format.session import SessionRecord
from liferaft.format.snapshot import Snapshot
from liferaft.repo import blobs, names
from liferaft.repo.index import INDEX_AD, ChunkIndex
from liferaft.repo.packer import Packer
from liferaft.repo.repository import Repository

SESSION_AD = b"liferaft session"
LEASE_RENEW_S = 60.0
LEASE_TERM_S = 600.0
"""A session whose lease is older than this is dead to maintenance; ours aborts before then."""


class Lease:
    """The session object, renewed by a thread; ``lost`` is set when renewal failed for too long."""

    def __init__(self, repo: Repository, sealer: Sealer, command: str) -> None:
        self._repo, self._sealer = repo, sealer
        self._name = names.session(sealer.session_id)
        self._started = time.time()
        self._command = command
        self._stop = threading.Event()
        self.hold = threading.Lock()
        """Held, no renewal writes (while the filesystem under the repository may be frozen)."""
        self.lost: str | None = None
        self._write()
        self._last_ok = time.monotonic()
        self._thread = threading.Thread(target=self._renew_loop, name="liferaft-lease", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        rec = SessionRecord(socket.gethostname(), os.getpid(), self._command, self._started, time.time())
        self._repo.store.put(self._name, self._sealer.seal(rec.to_bytes(), SESSION_AD))

    def _renew_loop(self) -> None:
        while not self._stop.wait(LEASE_RENEW_S):
            try:
                with self.hold:
                    self._write()
                self._last_ok = time.monotonic()
            except StoreError as exc:
                if time.monotonic() - self._last_ok > LEASE_TERM_S / 2:
                    self.lost = f"the session lease could not be renewed ({exc.message})"

    def end(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._repo.store.delete(self._name)
        except StoreError:
            pass  # a lapsed lease is harmless; maintenance ignores it after its term


class BackupWriter:
    """Stores chunks for one session. ``put`` is thread-safe."""

    def __init__(self, repo: Repository, index: ChunkIndex, command: str) -> None:
        self.repo = repo
        self.index = index
        self.sealer = Sealer(repo.master)
        self.level = repo.config.compression_level
        self._claimed: set[ChunkId] = set()
        self._lock = threading.Lock()
        self.lease = Lease(repo, self.sealer, command)
        max_blob = repo.config.chunk_size + 1024  # zstd's worst case is raw + a frame header
        self.packer = Packer(repo.store, self.sealer, repo.opener, repo.config.pack_size, max_blob)
        self.new_chunks = 0
        self.new_bytes = 0
        self.stored_bytes = 0

    def put(self, cid: ChunkId, data: bytes | bytearray, flags: int = 0) -> bool:
        """Store a chunk unless the repository or this session has it; True when it was new."""
        if self.lease.lost:
            raise StoreError(self.lease.lost)
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

    def commit(self, snap: Snapshot) -> SnapshotId:
        locations = self.packer.finish()
        store = self.repo.store
        store.sync()  # packs durable before anything names them
        if locations:
            body = index_fmt.encode(INDEX_MAGIC, locations)
            sealed = self.sealer.seal(body, INDEX_AD)
            store.put(names.index(self.sealer.session_id.hex()), sealed)
            store.sync()
        sid = self.repo.save_snapshot(self.sealer, snap)
        store.sync()
        self.lease.end()
        return sid

    def abort(self) -> None:
        self.packer.abort()
        self.lease.end()
