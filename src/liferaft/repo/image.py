"""A snapshot's image as bytes at any offset: ``read_at(offset, length)``.

The chunk map is read a piece (4096 ids) at a time, on demand, and the last few pieces are kept;
chunks are fetched (located, read, opened) on demand too and kept in a bounded LRU cache, and a
run of reads in order starts a parallel read-ahead of the next chunks. Memory is bounded by the
cache sizes, never by the image's size. Restore and verify read through it (``entries``,
``span``); a mount, a boot from the backup, a file restore or an NBD export read through
``read_at``. Zero chunks read as zeros, and so do free ones (their content is not part of the
snapshot).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from liferaft.errors import CorruptRepository
from liferaft.format import UNSTORED, ChunkId, FormatError
from liferaft.format.chunkmap import PIECE_ENTRIES, decode_piece
from liferaft.format.snapshot import Snapshot
from liferaft.repo.index import ChunkIndex
from liferaft.repo.repository import Repository

CACHE_CHUNKS = 32
"""Chunks kept (32 MiB at 1 MiB chunks)."""
READ_AHEAD = 4
"""Chunks fetched ahead, in parallel, once reads come in order."""
CACHE_PIECES = 4
RUN_BYTES = 4 * 1024 * 1024
"""Stored bytes read with one request, at most, where blobs follow each other in a pack."""
T = TypeVar("T")


class SnapshotImage:
    def __init__(
        self, repo: Repository, snap: Snapshot, index: ChunkIndex | None = None, cache_chunks: int = CACHE_CHUNKS,
        read_ahead: int = READ_AHEAD,
    ) -> None:  # fmt: skip
        """index: the index to locate chunks with; without one, the image opens the repository's
        (and closes it with itself)."""
        self._own_index = index is None
        self.repo, self.snap, self.index = repo, snap, index or repo.open_index()
        self.size, self.chunk_size, self.count = snap.size, snap.chunk_size, snap.chunk_count
        read_ahead = max(1, min(read_ahead, repo.store.capabilities.connections))  # what the store serves at once
        self._cache_chunks, self._read_ahead = max(cache_chunks, read_ahead + 1), read_ahead
        self._pieces: OrderedDict[int, list[ChunkId]] = OrderedDict()
        self._chunks: OrderedDict[int, bytes] = OrderedDict()
        self._fetching: dict[int, Future[bytes]] = {}
        self._lock = threading.Lock()
        self._last = -2
        self._pool: ThreadPoolExecutor | None = None
        expected = -(-self.count // PIECE_ENTRIES)
        if len(snap.map_pieces) != expected:
            self.close()
            raise CorruptRepository(f"the chunk map has {len(snap.map_pieces)} pieces for {self.count} chunks")

    # --- the chunk map ------------------------------------------------------------------------
    def piece(self, j: int) -> list[ChunkId]:
        """Chunk map piece j's ids (chunks 4096·j onwards)."""
        with self._lock:
            piece = self._pieces.get(j)
            if piece is not None:
                self._pieces.move_to_end(j)
                return piece
        pid = self.snap.map_pieces[j]
        try:
            piece = decode_piece(self.repo.read_chunk(pid, self.repo.locate(self.index, pid), check_id=True))
        except FormatError as exc:
            raise CorruptRepository(f"chunk map piece {pid.hex()[:16]} is unreadable ({exc})") from None
        want = min(PIECE_ENTRIES, self.count - j * PIECE_ENTRIES)
        if len(piece) != want:
            raise CorruptRepository(f"chunk map piece {pid.hex()[:16]} has {len(piece)} entries where {want} belong")
        with self._lock:
            self._pieces[j] = piece
            while len(self._pieces) > CACHE_PIECES:
                self._pieces.popitem(last=False)
        return piece

    def entry(self, i: int) -> ChunkId:
        """Chunk i's id (or ZERO_ID / FREE_ID)."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        return self.piece(i // PIECE_ENTRIES)[i % PIECE_ENTRIES]

    def entries(self) -> Iterator[ChunkId]:
        """Every chunk's id in order, a piece at a time (for a pass over the whole image)."""
        for j in range(len(self.snap.map_pieces)):
            yield from self.piece(j)

    def length(self, i: int) -> int:
        return min(self.chunk_size, self.size - i * self.chunk_size)

    # --- chunks -------------------------------------------------------------------------------
    def fetch(self, i: int, cid: ChunkId | None = None) -> bytes:
        """Chunk i's bytes, read from the repository (not cached; for a pass over the image)."""
        cid = self.entry(i) if cid is None else cid
        if cid in UNSTORED:
            return bytes(self.length(i))
        return self.repo.read_chunk(cid, self.repo.locate(self.index, cid))

    def span(self, i: int, lo: int, hi: int, cid: ChunkId | None = None, data: bytes | None = None) -> bytes:
        """Image bytes [lo, hi), which lie in chunk i, read from the repository (or cut from
        data, chunk i's bytes fetched already)."""
        base = i * self.chunk_size
        assert base <= lo <= hi <= base + self.length(i)
        data = self.fetch(i, cid) if data is None else data
        return data if (lo, hi) == (base, base + len(data)) else data[lo - base : hi - base]

    def runs(self, items: Iterable[T], cid_of: Callable[[T], ChunkId], most: int = RUN_BYTES) -> Iterator[list[T]]:
        """items in order, in runs whose chunks' blobs lie close together in one pack (the range
        covering them at most ``most`` bytes, and at least three quarters blobs of the run: the
        threads of a backup add neighbouring chunks to a pack in either order), for
        ``fetch_run``; a zero or free chunk is a run of its own."""
        run: list[T] = []
        pack: bytes = b""
        lo = hi = stored = 0
        for item in items:
            cid = cid_of(item)
            if cid in UNSTORED:
                if run:
                    yield run
                yield [item]
                run = []
                continue
            loc = self.repo.locate(self.index, cid)
            a, b = min(lo, loc.offset), max(hi, loc.offset + loc.length)
            if run and (loc.pack != pack or b - a > most or 4 * (stored + loc.length) < 3 * (b - a)):
                yield run
                run = []
            if not run:
                pack, a, b, stored = loc.pack, loc.offset, loc.offset + loc.length, 0
            run.append(item)
            lo, hi, stored = a, b, stored + loc.length
        if run:
            yield run

    def fetch_run(self, cids: list[ChunkId]) -> list[bytes]:
        """The bytes of stored chunks that ``runs`` put together, read with one request."""
        return self.repo.read_chunks([(c, self.repo.locate(self.index, c)) for c in cids])

    def chunk(self, i: int) -> bytes:
        """Chunk i's bytes through the cache; reads in order fetch the next chunks ahead."""
        with self._lock:
            data = self._chunks.get(i)
            if data is not None:
                self._chunks.move_to_end(i)
            fut = self._fetching.get(i) if data is None else None
            sequential, self._last = i == self._last + 1, i
        if sequential:
            self._prefetch(range(i + 1, min(i + 1 + self._read_ahead, self.count)))
        if data is not None:
            return data
        data = fut.result() if fut is not None else self.fetch(i)
        self._keep(i, data)
        return data

    def _keep(self, i: int, data: bytes) -> None:
        with self._lock:
            self._chunks[i] = data
            self._chunks.move_to_end(i)
            while len(self._chunks) > self._cache_chunks:
                self._chunks.popitem(last=False)

    def _prefetch(self, wanted: range) -> None:
        with self._lock:
            todo = [k for k in wanted if k not in self._chunks and k not in self._fetching]
            if not todo:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._read_ahead, thread_name_prefix="liferaft-readahead")
            for k in todo:
                fut = self._pool.submit(self.fetch, k)
                self._fetching[k] = fut
                fut.add_done_callback(functools.partial(self._fetched, k))

    def _fetched(self, k: int, fut: Future[bytes]) -> None:
        with self._lock:
            self._fetching.pop(k, None)
        if not fut.cancelled() and fut.exception() is None:
            self._keep(k, fut.result())

    def read_at(self, offset: int, length: int) -> bytes:
        """length bytes of the image from offset (fewer only past its end)."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        end = min(offset + length, self.size)
        i = offset // self.chunk_size
        if end <= (i + 1) * self.chunk_size:  # within one chunk (a mount's reads): one copy, not three
            base = i * self.chunk_size
            return self.chunk(i)[offset - base : end - base] if offset < end else b""
        out = bytearray()
        at = offset
        while at < end:
            i = at // self.chunk_size
            base = i * self.chunk_size
            data = self.chunk(i)
            take = min(end, base + len(data)) - at
            out += data[at - base : at - base + take]
            at += take
        return bytes(out)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            self._chunks.clear()
            self._pieces.clear()
        if self._own_index:
            self.index.close()
            self._own_index = False

    def __enter__(self) -> SnapshotImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
