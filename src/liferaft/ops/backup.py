"""Backup: image a source into the repository as one snapshot.

Chunks of free filesystem blocks and holes of image files are not read at all; the rest is read
(O_DIRECT on devices) with free bytes zeroed, all-zero chunks are only marked, and the others get
their keyed id and are stored unless the repository already holds them (incremental forever by
dedup). The chunk map is written as deduplicated metadata pieces, then the snapshot commits it all.
"""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from liferaft.disk.imaging import Plan, Region, chunk_free, make_plan
from liferaft.errors import Interrupted
from liferaft.format import FLAG_META, FREE_ID, ZERO_ID, ChunkId
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
    free_chunks: int
    new_chunks: int
    bytes_read: int
    new_bytes: int
    stored_bytes: int
    seconds: float
    partitions: list[dict[str, Any]]

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
    all_blocks: bool = False,
) -> BackupResult:
    """Image source into the repository. Unless all_blocks, free filesystem blocks are neither
    read nor stored (they restore as zeros)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    reader = providers.get(provider).open(source, repo.config.chunk_size)
    try:
        plan = make_plan(reader.read_at, reader.info.size, all_blocks)
        return _run(repo, reader, plan, provider, progress, workers, started)
    finally:
        reader.close()


def _run(
    repo: Repository, reader: SourceReader, plan: Plan, provider: str, progress: Progress, workers: int | None, started: float
) -> BackupResult:
    size = reader.info.size
    chunk = repo.config.chunk_size
    zero = bytes(chunk)
    zero_id = repo.ids.chunk_id(zero)
    index = repo.open_index()
    writer = BackupWriter(repo, index, f"backup {reader.path}")
    digest = repo.ids.digest()
    pieces: list[ChunkId] = []
    piece: list[ChunkId] = []
    counts = {ZERO_ID: 0, FREE_ID: 0}
    read_bytes = 0

    def work(item: tuple[int, tuple[tuple[int, int], ...]]) -> tuple[ChunkId, ChunkId, int, int]:
        """(map entry, id for the digest, length, bytes read) of one chunk."""
        i, free = item
        length = min(chunk, size - i * chunk)
        if sum(n for _, n in free) == length:
            return FREE_ID, FREE_ID, length, 0
        if reader.is_hole(i):
            return ZERO_ID, zero_id if length == chunk else repo.ids.chunk_id(bytes(length)), length, 0
        data = reader.read(i)
        if free:  # stale data in free blocks is neither hashed nor stored
            data = bytearray(data)
            for at, n in free:
                data[at : at + n] = bytes(n)
        if data == zero:
            return ZERO_ID, zero_id, length, length
        if length < chunk and data.count(0) == length:  # a short all-zero last chunk
            return ZERO_ID, repo.ids.chunk_id(data), length, length
        cid = repo.ids.chunk_id(data)
        writer.put(cid, data)
        return cid, cid, length, length

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
        jobs = chunk_free(plan.free_extents(), chunk, size)
        for entry, did, length, nread in ordered_map(work, jobs, workers):
            digest.update(did)
            if entry in counts:
                counts[entry] += 1
            read_bytes += nread
            piece.append(entry)
            if len(piece) == PIECE_ENTRIES:
                flush_piece()
            progress.advance(length)
        if piece:
            flush_piece()
        seconds = time.monotonic() - started
        stats = {
            "bytes_read": read_bytes,
            "zero_chunks": counts[ZERO_ID],
            "free_chunks": counts[FREE_ID],
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
            chunk_size=chunk,
            map_pieces=tuple(pieces),
            image_digest=digest.finish(size),
            stats=stats,
            layout=layout_record(plan),
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
        zero_chunks=counts[ZERO_ID],
        free_chunks=counts[FREE_ID],
        new_chunks=writer.new_chunks,
        bytes_read=read_bytes,
        new_bytes=writer.new_bytes,
        stored_bytes=writer.stored_bytes,
        seconds=time.monotonic() - started,
        partitions=[_partition_summary(r) for r in plan.regions],
    )


def layout_record(plan: Plan) -> dict[str, Any]:
    """The snapshot's layout record (docs/design.md, "Snapshot")."""
    lay = plan.layout
    return {
        "table": lay.table,
        "disk_uuid": lay.disk_uuid,
        "partitions": [
            {
                "number": p.number,
                "start": p.start,
                "size": p.size,
                "type": p.type,
                "name": p.name,
                "uuid": p.uuid,
                "bootable": p.bootable,
            }
            for p in lay.partitions
        ],
        "regions": [_partition_summary(r) for r in plan.regions],
    }


def _partition_summary(r: Region) -> dict[str, Any]:
    info = r.fs.info if r.fs else None
    return {
        "number": r.partition.number,
        "start": r.partition.start,
        "size": r.partition.size,
        "filesystem": info.kind if info else "",
        "label": info.label if info else "",
        "uuid": info.uuid if info else "",
        "block_size": info.block_size if info else 0,
        "used": r.used_bytes,
        "imaged": "used blocks" if info else "whole",
        "note": r.note,
    }
