"""Backup: image a source into the repository as one snapshot.

Every chunk is read (O_DIRECT on devices), all-zero chunks are only marked, the others get their
keyed id and are stored unless the repository already holds them (incremental forever by dedup).
The chunk map is written as deduplicated metadata pieces, then the snapshot commits it all.
"""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from liferaft.errors import Interrupted
from liferaft.format import FLAG_META, ZERO_ID, ChunkId
from liferaft.format.chunkmap import PIECE_ENTRIES, encode_piece
from liferaft.format.snapshot import Snapshot
from liferaft.ops.pipeline import default_workers, ordered_map
from liferaft.ops.progress import NoProgress, Progress
from liferaft.repo.repository import Repository
from liferaft.repo.writer import BackupWriter
from liferaft.source import providers
from liferaft.source.device import SourceReader


@dataclass(frozen=True, slots=True)
class BackupResult:
    snapshot_id: str
    source: str
    provider: str
    size: int
    chunks: int
    zero_chunks: int
    new_chunks: int
    bytes_read: int
    new_bytes: int
    stored_bytes: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _now() -> str:
    """UTC with microseconds, so that snapshots taken within one second still sort in order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def backup(
    repo: Repository,
    source: str,
    provider: str = "plain",
    progress: Progress | None = None,
    workers: int | None = None,
) -> BackupResult:
    progress = progress or NoProgress()
    started = time.monotonic()
    reader = providers.get(provider).open(source, repo.config.chunk_size)
    try:
        return _run(repo, reader, provider, progress, workers, started)
    finally:
        reader.close()


def _run(
    repo: Repository, reader: SourceReader, provider: str, progress: Progress, workers: int | None, started: float
) -> BackupResult:
    size = reader.info.size
    zero = bytes(repo.config.chunk_size)
    zero_id = repo.ids.chunk_id(zero)
    index = repo.open_index()
    writer = BackupWriter(repo, index, f"backup {reader.path}")
    digest = repo.ids.digest()
    pieces: list[ChunkId] = []
    piece: list[ChunkId] = []
    zero_chunks = 0

    def work(i: int) -> tuple[ChunkId, ChunkId, int]:
        """(map entry, id for the digest, length) of chunk i."""
        if reader.is_hole(i):
            length = min(len(zero), size - i * len(zero))
            return ZERO_ID, zero_id if length == len(zero) else repo.ids.chunk_id(bytes(length)), length
        data = reader.read(i)
        if data == zero:
            return ZERO_ID, zero_id, len(data)
        if len(data) < len(zero) and data.count(0) == len(data):  # a short all-zero last chunk
            return ZERO_ID, repo.ids.chunk_id(data), len(data)
        cid = repo.ids.chunk_id(data)
        writer.put(cid, data)
        return cid, cid, len(data)

    def flush_piece() -> None:
        body = encode_piece(piece)
        pid = repo.ids.chunk_id(body)
        writer.put(pid, body, FLAG_META)
        pieces.append(pid)
        piece.clear()

    progress.start(f"backup {reader.path}", size)
    try:
        if workers is None:
            workers = default_workers() + (2 if reader.direct else 0)
        for entry, did, length in ordered_map(work, range(reader.chunk_count), workers):
            digest.update(did)
            zero_chunks += entry == ZERO_ID
            piece.append(entry)
            if len(piece) == PIECE_ENTRIES:
                flush_piece()
            progress.advance(length)
        if piece:
            flush_piece()
        seconds = time.monotonic() - started
        stats = {
            "bytes_read": size,
            "zero_chunks": zero_chunks,
            "new_chunks": writer.new_chunks,
            "new_bytes": writer.new_bytes,
            "stored_bytes": writer.stored_bytes,
            "seconds": round(seconds, 3),
        }
        snap = Snapshot(
            hostname=socket.gethostname(),
            source=reader.path,
            source_kind=reader.info.kind,
            time=_now(),
            provider=provider,
            size=size,
            chunk_size=repo.config.chunk_size,
            map_pieces=tuple(pieces),
            image_digest=digest.finish(size),
            stats=stats,
        )
        sid = writer.commit(snap)
    except KeyboardInterrupt:
        writer.abort()
        raise Interrupted() from None
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.finish()
        index.close()
    return BackupResult(
        snapshot_id=sid,
        source=reader.path,
        provider=provider,
        size=size,
        chunks=reader.chunk_count,
        zero_chunks=zero_chunks,
        new_chunks=writer.new_chunks,
        bytes_read=size,
        new_bytes=writer.new_bytes,
        stored_bytes=writer.stored_bytes,
        seconds=time.monotonic() - started,
    )
