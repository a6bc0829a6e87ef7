"""One image being built: chunks read, new ones stored, and every chunk's id kept in a flat table
(32 bytes per chunk: 64 MiB for a 2 TiB disk) until the snapshot commits it.

A chunk may be copied more than once (live backups re-copy what was written meanwhile); the last
copy counts. Reading and storing are separate steps, so a live backup can read chunks into memory
while the filesystems are frozen and store them after the thaw.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from liferaft.disk.imaging import Pieces
from liferaft.format import FLAG_META, FREE_ID, ID_SIZE, ZERO_ID, ChunkId, SnapshotId
from liferaft.format.chunkmap import PIECE_ENTRIES, encode_piece
from liferaft.format.snapshot import Snapshot
from liferaft.ops.cancel import Cancel
from liferaft.ops.pipeline import ordered_map
from liferaft.ops.progress import Progress
from liferaft.repo.index import ChunkIndex
from liferaft.repo.repository import Repository
from liferaft.repo.writer import BackupWriter
from liferaft.source.device import ChunkSource


def now() -> str:
    """UTC with microseconds, so that snapshots taken within one second still sort in order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Imager:
    def __init__(
        self, repo: Repository, reader: ChunkSource, progress: Progress, workers: int, readers: int | None = None,
        cancel: Cancel | None = None, command: str | None = None, host: str | None = None, lock_s: float | None = None,
    ) -> None:  # fmt: skip
        """workers: threads that hash, compress and seal (one per core); readers: threads that
        read ahead of them from an O_DIRECT device (which has no kernel readahead); cancel: stops
        every pass over the chunks (Interrupted); host: the host name the snapshot records (this
        machine's by default); lock_s: Object Lock for what it writes (None: the repository's)."""
        self.repo, self.reader, self.progress, self.workers = repo, reader, progress, workers
        self.cancel = cancel
        self.readers = readers or workers
        self.size = reader.info.size
        self.chunk = repo.config.chunk_size
        self.count = reader.chunk_count
        self._zero = bytes(self.chunk)
        self.zero_id = repo.ids.chunk_id(self._zero)
        self.table = bytearray(self.count * ID_SIZE)
        self.index: ChunkIndex = repo.open_index(adopt=True)  # a killed run's packs are used, not stored again
        self.writer = BackupWriter(repo, self.index, command or f"backup {reader.path}", lock_s)
        self.host = host or socket.gethostname()
        self.bytes_read = 0
        self.before_read: Callable[[int], None] = lambda i: None
        """Told the index of every chunk just before it is read whole, every byte as on the
        source (live backups stamp such copies)."""

    def length(self, i: int) -> int:
        return min(self.chunk, self.size - i * self.chunk)

    def entry(self, i: int) -> ChunkId:
        return ChunkId(bytes(self.table[i * ID_SIZE : (i + 1) * ID_SIZE]))

    def set(self, i: int, cid: ChunkId) -> None:
        self.table[i * ID_SIZE : (i + 1) * ID_SIZE] = cid

    def read(self, i: int, free: Pieces = ()) -> bytes | bytearray:
        """Chunk i with its free pieces zeroed."""
        if not free:  # a copy that zeroes free blocks (by a map older than the read) is no full copy
            self.before_read(i)
        data = self.reader.read(i)
        if free:  # stale data in free blocks is neither hashed nor stored
            data = bytearray(data)
            for at, n in free:
                data[at : at + n] = bytes(n)
        return data

    def ingest(self, data: bytes | bytearray) -> ChunkId:
        """The map entry of a chunk's bytes; stores it if the repository lacks it."""
        if data == self._zero or (len(data) < self.chunk and data.count(0) == len(data)):
            return ZERO_ID
        cid = self.repo.ids.chunk_id(data)
        self.writer.put(cid, data)
        return cid

    def copy(self, jobs: Iterable[tuple[int, Pieces]], what: str, total: int) -> int:
        """Read and store the chunks of jobs ((index, free pieces)); the bytes read."""
        before = self.bytes_read

        def unread(jobs: Iterable[tuple[int, Pieces]]) -> Iterator[tuple[int, Pieces]]:
            """The jobs that need reading. A chunk that holds no used block, or lies wholly in a
            hole of an image file, gets its entry here, without a trip through the threads: a
            sparse image's time follows its data, not its size."""
            for job in jobs:
                i = job[0]
                if sum(n for _, n in job[1]) == self.length(i):
                    self.set(i, FREE_ID)
                elif self.reader.is_hole(i):
                    self.set(i, ZERO_ID)
                else:
                    yield job
                    continue
                self.progress.advance(self.length(i))

        def read(job: tuple[int, Pieces]) -> tuple[int, bytes | bytearray]:
            return job[0], self.read(*job)

        def ingest(got: tuple[int, bytes | bytearray]) -> tuple[int, ChunkId, int]:
            i, data = got
            return i, self.ingest(data), len(data)

        if self.reader.direct:  # reads wait on the device while the workers compute; each read is a copy
            read_ahead = ordered_map(read, unread(jobs), self.readers, window=2 * self.readers, cancel=self.cancel)
            # 14 chunks of slack: the workers go on past a chunk whose compression is slow (its
            # thread preempted by a busy application) instead of waiting for it to leave the window
            results = ordered_map(ingest, read_ahead, self.workers, window=self.workers + 14, cancel=self.cancel)
        else:  # the kernel reads ahead; a read is this thread's buffer, used at once
            read_ahead = None
            results = ordered_map(lambda job: ingest(read(job)), unread(jobs), self.workers, cancel=self.cancel)
        self.progress.start(what, total)
        try:
            for i, cid, nread in results:
                self.set(i, cid)
                self.bytes_read += nread
                self.progress.advance(self.length(i))
        finally:
            results.close()  # on an error: every thread stopped before it propagates
            if read_ahead is not None:
                read_ahead.close()
            self.progress.finish()
        return self.bytes_read - before

    def read_into_memory(self, chunks: list[int]) -> Iterator[tuple[int, bytes]]:
        """Whole chunks copied out of the reader's buffers (for the frozen window: no storing)."""

        def work(i: int) -> tuple[int, bytes]:
            self.before_read(i)
            data = self.reader.read(i)
            return i, bytes(data)

        yield from ordered_map(work, chunks, self.readers, cancel=self.cancel)

    def store(self, chunks: Iterable[tuple[int, bytes]]) -> None:
        def work(item: tuple[int, bytes]) -> tuple[int, ChunkId]:
            return item[0], self.ingest(item[1])

        for i, cid in ordered_map(work, chunks, self.workers, cancel=self.cancel):
            self.set(i, cid)

    def counts(self) -> tuple[int, int]:
        """(zero chunks, free chunks) in the table."""
        zero = free = 0
        for i in range(self.count):
            e = self.entry(i)
            zero += e == ZERO_ID
            free += e == FREE_ID
        return zero, free

    def commit(
        self, provider: str, stats: dict[str, Any], layout: dict[str, Any], source: str | None = None,
        like: Snapshot | None = None,
    ) -> SnapshotId:  # fmt: skip
        """Write the chunk map and the snapshot: the commit point. source: what the snapshot is
        of, when that is not what was read (an image file read through its loop device); like:
        a snapshot whose host, source and time this one keeps (a copy of it)."""
        digest = self.repo.ids.digest()
        pieces: list[ChunkId] = []
        for start in range(0, self.count, PIECE_ENTRIES):
            ids = [self.entry(i) for i in range(start, min(start + PIECE_ENTRIES, self.count))]
            for i, e in enumerate(ids, start):
                if e == ZERO_ID:
                    length = self.length(i)
                    digest.update(self.zero_id if length == self.chunk else self.repo.ids.chunk_id(bytes(length)))
                else:
                    digest.update(e)
            body = encode_piece(ids)
            pid = self.repo.ids.chunk_id(body)
            self.writer.put(pid, body, FLAG_META)
            pieces.append(pid)
        snap = Snapshot(
            hostname=like.hostname if like else self.host,
            source=like.source if like else source or self.reader.path,
            source_kind=self.reader.info.kind,
            time=like.time if like else now(),
            provider=provider,
            size=self.size,
            chunk_size=self.chunk,
            map_pieces=tuple(pieces),
            image_digest=digest.finish(self.size),
            stats=stats,
            layout=layout,
        )
        return self.writer.commit(snap)

    def abort(self) -> None:
        self.writer.abort()

    def close(self) -> None:
        self.index.close()
