"""Copy: snapshots from one repository into another (a fast local one and an offsite S3 one),
storing in the destination only what it lacks.

Each repository has its own keys, so chunk ids differ between them: every chunk of a snapshot
is read from the source (opened and checked by its AEAD), given the destination's id, and
stored there unless the destination already holds it (deduplicated as a backup would be, also
against snapshots of other machines). The copy keeps the snapshot's host, source, time, layout
and stats, and gets its own chunk map and image digest, so it restores on its own, with its own
password, after the source is gone. A snapshot the destination already holds (same host,
source and time) is skipped, so a copy run again copies only what is new.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from liferaft.errors import UsageError
from liferaft.format import FREE_ID
from liferaft.ops.cancel import Cancel
from liferaft.ops.imager import Imager
from liferaft.ops.pipeline import default_workers
from liferaft.ops.progress import NoProgress, Progress
from liferaft.ops.snapshots import Selection
from liferaft.repo.image import SnapshotImage
from liferaft.repo.repository import Repository
from liferaft.source.device import SourceInfo


@dataclass(slots=True)
class CopyResult:
    copied: list[str] = field(default_factory=list)
    """Ids in the destination of the snapshots copied now."""
    skipped: int = 0
    """Snapshots the destination held already."""
    new_bytes: int = 0
    stored_bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class SnapshotSource:
    """A snapshot of another repository read as a source, chunk by chunk (``ChunkSource``)."""

    direct = False

    def __init__(self, image: SnapshotImage) -> None:
        self.image = image
        self.path = image.snap.source
        self.info = SourceInfo(image.snap.source, image.snap.source_kind, image.size)

    @property
    def chunk_count(self) -> int:
        return self.image.count

    def read(self, index: int) -> bytes:
        return self.image.fetch(index)

    def is_hole(self, index: int) -> bool:
        return False


def copy(
    src: Repository, dst: Repository, where: Selection = Selection(), progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> CopyResult:  # fmt: skip
    """Copy every snapshot where selects that dst lacks, oldest first."""
    progress = progress or NoProgress()
    started = time.monotonic()
    result = CopyResult()
    have = {(s.hostname, s.source, s.time) for _, s in dst.snapshots(damaged=[])}
    for _, snap in src.snapshots(damaged=[]):
        if not where.matches(snap):
            continue
        if (snap.hostname, snap.source, snap.time) in have:
            result.skipped += 1
            continue
        if snap.chunk_size != dst.config.chunk_size:
            raise UsageError(
                f"the destination's chunk size ({dst.config.chunk_size >> 10} KiB) is not the snapshot's "
                f"({snap.chunk_size >> 10} KiB): copy into a repository made with --chunk-size {snap.chunk_size >> 10}K"
            )
        with SnapshotImage(src, snap) as image:
            reader = SnapshotSource(image)
            workers = default_workers()
            im = Imager(
                dst, reader, progress, workers, workers + 2, cancel, command=f"copy {snap.source} from {src.store.location}"
            )
            try:
                jobs = ((i, ((0, im.length(i)),) if cid == FREE_ID else ()) for i, cid in enumerate(image.entries()))
                im.copy(jobs, f"copy {snap.source} ({snap.time[:19]})", im.size)
                stats = {**snap.stats, "copied_from": src.store.location}
                sid = im.commit(snap.provider, stats, snap.layout, like=snap)
            except BaseException:
                im.abort()
                raise
            finally:
                im.close()
        result.copied.append(sid)
        result.new_bytes += im.writer.new_bytes
        result.stored_bytes += im.writer.stored_bytes
    result.seconds = time.monotonic() - started
    return result
