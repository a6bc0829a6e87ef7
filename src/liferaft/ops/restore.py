"""Restore: rebuild a snapshot's image onto an image file or a block device.

Chunks are fetched, opened and written in parallel; zero chunks become holes in files and are
zeroed on devices. With ``verify`` the target is read back afterwards and its image digest must
equal the one recorded at backup time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from liferaft.errors import Interrupted, VerifyFailed
from liferaft.format import ZERO_ID, ChunkId
from liferaft.ops.pipeline import default_workers, ordered_map
from liferaft.ops.progress import NoProgress, Progress
from liferaft.repo.repository import Repository
from liferaft.source.device import SourceReader
from liferaft.source.target import TargetWriter


@dataclass(frozen=True, slots=True)
class RestoreResult:
    snapshot_id: str
    target: str
    size: int
    chunks_written: int
    zero_chunks: int
    bytes_written: int
    verified: bool
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def restore(
    repo: Repository,
    name: str,
    target: str,
    force: bool = False,
    verify: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
) -> RestoreResult:
    progress = progress or NoProgress()
    started = time.monotonic()
    sid = repo.resolve(name)
    snap = repo.load_snapshot(sid)
    index = repo.open_index()
    chunk = snap.chunk_size
    try:
        writer = TargetWriter(target, snap.size, force)
        written = zeros = 0

        def work(item: tuple[int, ChunkId]) -> int:
            i, cid = item
            length = min(chunk, snap.size - i * chunk)
            if cid == ZERO_ID:
                writer.zero(i * chunk, length)
                return 0
            data = repo.read_chunk(cid, repo.locate(index, cid))
            writer.write(i * chunk, data)
            return len(data)

        progress.start(f"restore {sid[:12]} to {target}", snap.size)
        try:
            # writes are O_DIRECT, so each waits for the disk: more threads keep it busy
            jobs = ordered_map(work, enumerate(repo.chunk_map(snap, index)), workers or default_workers() + 2)
            for i, n in enumerate(jobs):
                written += n
                zeros += n == 0
                progress.advance(min(chunk, snap.size - i * chunk))
            writer.finish()
        except KeyboardInterrupt:
            raise Interrupted("the target holds a partial image") from None
        finally:
            writer.close()
            progress.finish()
        if verify:
            got = image_digest(repo, target, snap.size, progress, workers)
            if got != snap.image_digest:
                raise VerifyFailed(f"the restored image at {target} differs from the backup (digest mismatch)")
    finally:
        index.close()
    return RestoreResult(sid, target, snap.size, snap.chunk_count - zeros, zeros, written, verify, time.monotonic() - started)


def image_digest(repo: Repository, path: str, size: int, progress: Progress, workers: int | None = None) -> bytes:
    """The image digest of the first size bytes of path, read back from the disk."""
    reader = SourceReader(path, repo.config.chunk_size, limit=size)
    digest = repo.ids.digest()
    progress.start(f"verify {path}", size)
    try:
        if reader.info.size < size:
            raise VerifyFailed(f"{path} is shorter than the image")
        for cid, n in ordered_map(lambda i: _id_of(repo, reader, i), range(reader.chunk_count), workers):
            digest.update(cid)
            progress.advance(n)
    finally:
        progress.finish()
        reader.close()
    return digest.finish(size)


def _id_of(repo: Repository, reader: SourceReader, i: int) -> tuple[bytes, int]:
    data = reader.read(i)
    return repo.ids.chunk_id(data), len(data)
