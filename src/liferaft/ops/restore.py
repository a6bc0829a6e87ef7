"""Restore: rebuild a snapshot's image, or one partition of it, onto an image file or a device.

Chunks are fetched, opened and written in parallel. Zero and free chunks become holes in files;
on devices zero chunks are zeroed, free ones discarded with ``discard`` (else zeroed). ``delta``
restores onto a target that already holds an older state: each target chunk is read and hashed,
only chunks whose id differs are fetched, and of those only the 4 KiB blocks that differ are
written. Chunks come through the snapshot's image reader (``repo.image``). ``verify`` reads the
target back and checks every chunk against the snapshot (free chunks excepted: their content is
not part of it) and, for a whole image, recomputes the image digest from the bytes read back and
compares it with the one the backup recorded.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from liferaft.errors import Interrupted, TargetError, UsageError, VerifyFailed
from liferaft.format import FREE_ID, UNSTORED, ZERO_ID, ChunkId
from liferaft.format.snapshot import Snapshot
from liferaft.ops.cancel import Cancel
from liferaft.ops.pipeline import default_workers, ordered_map
from liferaft.ops.progress import NoProgress, Progress
from liferaft.ops.snapshots import select
from liferaft.repo.image import SnapshotImage
from liferaft.repo.repository import Repository
from liferaft.source.device import SourceReader
from liferaft.target.writer import TargetWriter, changed_runs, reread_partitions, staged


@dataclass(frozen=True, slots=True)
class RestoreResult:
    snapshot_id: str
    target: str
    size: int
    partition: int | None
    chunks_read: int
    """Target chunks read and hashed (delta restore)."""
    chunks_written: int
    zero_chunks: int
    free_chunks: int
    bytes_written: int
    verified: bool
    seconds: float
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Job:
    index: int
    cid: ChunkId
    lo: int
    """Absolute image range of this chunk that is restored: [lo, hi)."""
    hi: int
    at: int
    """Where lo lands on the target."""


def partition_range(snap: Snapshot, number: int) -> tuple[int, int]:
    disk = snap.disk
    found = disk.partition(number)
    if found is None:
        numbers = [p.number for p in disk.data_partitions()]
        raise UsageError(f"the snapshot has no partition {number} (it has: {numbers or 'none'})")
    return found.start, found.end


def restore(
    repo: Repository,
    name: str,
    target: str,
    force: bool = False,
    verify: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
    partition: int | None = None,
    discard: bool = False,
    delta: bool = False,
    in_place: bool = False,
    cancel: Cancel | None = None,
) -> RestoreResult:
    """in_place: write target as it is named, unstaged (the caller stages it); a delta restore
    always writes in place, into what the target holds. cancel: another thread may stop the
    restore (Interrupted; a staged file is removed, a device holds a partial image)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    sid = select(repo, name)
    snap = repo.load_snapshot(sid)
    lo, hi = (0, snap.size) if partition is None else partition_range(snap, partition)
    with SnapshotImage(repo, snap) as image, nullcontext(target) if delta or in_place else staged(target, force) as path:
        writer = TargetWriter(path, hi - lo, force or path != target, existing=delta)
        if delta:  # every chunk it will write, read and checked first: nothing is written in vain
            try:
                _write(image, writer, lo, hi, progress, workers, discard, delta, cancel, write=False)
            except BaseException:
                writer.close()
                raise
        stats = _write(image, writer, lo, hi, progress, workers, discard, delta, cancel)
        if verify:
            _verify(image, path, lo, hi, progress, workers, cancel)
    notes = kernel_view(target, snap) if partition is None and not in_place else ()
    return RestoreResult(
        sid, target, hi - lo, partition, stats["read"], stats["written"], stats["zero"], stats["free"],
        stats["bytes"], verify, time.monotonic() - started, notes,
    )  # fmt: skip


def stream(
    repo: Repository, name: str, out: int, progress: Progress | None = None, workers: int | None = None,
    partition: int | None = None, cancel: Cancel | None = None,
) -> RestoreResult:  # fmt: skip
    """The image (or one partition) as a raw stream, in order, to the file descriptor out (a
    pipe into ``ssh host dd of=/dev/sda``, or zstd): free and zero chunks become zeros, since a
    stream has no holes. Its chunks are fetched ahead in parallel and written in order."""
    progress = progress or NoProgress()
    started = time.monotonic()
    sid = select(repo, name)
    snap = repo.load_snapshot(sid)
    lo, hi = (0, snap.size) if partition is None else partition_range(snap, partition)
    counts = {"written": 0, "zero": 0, "free": 0}
    with SnapshotImage(repo, snap) as image:

        def fetch(run: list[_Job]) -> tuple[list[_Job], list[bytes]]:
            stored = image.fetch_run([j.cid for j in run]) if len(run) > 1 and run[0].cid not in UNSTORED else [None] * len(run)
            parts = []
            for job, data in zip(run, stored, strict=True):
                if job.cid in UNSTORED:
                    parts.append(bytes(job.hi - job.lo))
                else:
                    parts.append(image.span(job.index, job.lo, job.hi, job.cid, data))
            return run, parts

        progress.start("restore to standard output", hi - lo)
        try:
            runs = image.runs(_jobs(image, lo, hi), lambda job: job.cid)
            pool = workers or default_workers() + 2
            for run, parts in ordered_map(fetch, runs, pool, window=2 * pool, cancel=cancel):
                for job, data in zip(run, parts, strict=True):
                    _write_all(out, data)
                    kind = "free" if job.cid == FREE_ID else "zero" if job.cid == ZERO_ID else "written"
                    counts[kind] += 1
                    progress.advance(len(data))
        except BrokenPipeError:
            raise TargetError(path="standard output", detail="the reading end of the pipe closed") from None
        except (KeyboardInterrupt, Interrupted):
            raise Interrupted("the stream is incomplete") from None
        finally:
            progress.finish()
    return RestoreResult(
        sid, "-", hi - lo, partition, 0, counts["written"], counts["zero"], counts["free"], hi - lo, False,
        time.monotonic() - started, (),
    )  # fmt: skip


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def kernel_view(target: str, snap: Snapshot) -> tuple[str, ...]:
    """After a whole disk with a partition table went onto a device: the kernel re-reads the
    table (or a note says how to make it)."""
    if not snap.disk.has_table or not Path(target).is_block_device():
        return ()
    note = reread_partitions(target)
    return (note,) if note else ()


def _read_target(reader: SourceReader, job: _Job, chunk: int, aligned: bool) -> bytes | bytearray:
    """What the target holds where job lands (a whole chunk read when the range is aligned)."""
    return reader.read(job.at // chunk) if aligned else reader.read_at(job.at, job.hi - job.lo)


def _jobs(image: SnapshotImage, lo: int, hi: int) -> Any:
    chunk = image.chunk_size
    for i, cid in enumerate(image.entries()):
        a, b = max(lo, i * chunk), min(hi, (i + 1) * chunk, image.size)
        if a < b:
            yield _Job(i, cid, a, b, a - lo)


def _write(
    image: SnapshotImage, writer: TargetWriter, lo: int, hi: int, progress: Progress, workers: int | None,
    discard: bool, delta: bool, cancel: Cancel | None = None, write: bool = True,
) -> dict[str, int]:  # fmt: skip
    """write=False (a delta restore's first pass): fetch and check every chunk that would be
    written, write nothing, so that a chunk that cannot be read stops it before the target
    holds a mix of two states."""
    repo, chunk = image.repo, image.chunk_size
    reader = SourceReader(writer.path, chunk, limit=hi - lo) if delta else None
    aligned = lo % chunk == 0

    def work(run: list[_Job]) -> list[tuple[str, int]]:
        """(what happened, bytes written) for each chunk of a run (their blobs read at once)."""
        fetched = image.fetch_run([job.cid for job in run]) if len(run) > 1 else [None]
        done = []
        for job, data in zip(run, fetched, strict=True):
            try:
                done.append(restore_one(job, data))
            finally:
                progress.advance(job.hi - job.lo)  # free and zero stretches count too: the ETA is honest
        return done

    def restore_one(job: _Job, data: bytes | None) -> tuple[str, int]:
        n = job.hi - job.lo
        if job.cid == FREE_ID:
            if not delta:
                if discard:
                    writer.discard(job.at, n)
                else:
                    writer.zero(job.at, n)
            return "free", 0
        whole = job.hi - job.lo == image.length(job.index)
        if delta:
            assert reader is not None
            have = _read_target(reader, job, chunk, aligned)
            if job.cid == ZERO_ID:
                if have.count(0) == len(have):
                    return "read", 0
                if write:
                    writer.zero(job.at, n)
                return "zero", n
            if whole and repo.ids.chunk_id(have) == job.cid:
                return "read", 0
        elif job.cid == ZERO_ID:
            writer.zero(job.at, n)
            return "zero", 0
        part = image.span(job.index, job.lo, job.hi, job.cid, data)
        if not write:
            return "read", 0
        if delta:  # write only the 4 KiB blocks that differ (a few pages of a database, say)
            runs = changed_runs(part, have) if len(have) == len(part) else [(0, len(part))]
            for start, end in runs:
                writer.write(job.at + start, part[start:end])
            written = sum(end - start for start, end in runs)
            return ("written" if written else "read"), written
        writer.write(job.at, part)
        return "written", n

    stats = {"read": 0, "written": 0, "zero": 0, "free": 0, "bytes": 0}
    progress.start(f"restore to {writer.path}" if write else f"check what {writer.path} needs", hi - lo)
    try:
        # a delta restore reads the target first and fetches only chunks that differ: one at a time
        runs = ([job] for job in _jobs(image, lo, hi)) if delta else image.runs(_jobs(image, lo, hi), lambda job: job.cid)
        results = ordered_map(
            work, runs, workers or default_workers() + 2, window=2 * (workers or default_workers() + 2), cancel=cancel
        )
        for what, n in (one for done in results for one in done):
            if delta:
                stats["read"] += what != "free"
            if what in ("written", "zero") and n:
                stats["written"] += 1
            stats["zero"] += what == "zero"
            stats["free"] += what == "free"
            stats["bytes"] += n
        if write:
            writer.finish()
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted("the target holds a partial image" if write else "nothing was written") from None
    finally:
        if write:  # a check pass leaves the target open for the pass that writes
            writer.close()
        if reader is not None:
            reader.close()
        progress.finish()
    return stats


def _verify(
    image: SnapshotImage, target: str, lo: int, hi: int, progress: Progress, workers: int | None, cancel: Cancel | None
) -> None:
    """Read the target back: every chunk against the snapshot (free chunks are not compared),
    and for a whole image the image digest of the bytes read back against the recorded one."""
    repo, chunk = image.repo, image.chunk_size
    reader = SourceReader(target, chunk, limit=hi - lo)
    aligned = lo % chunk == 0
    whole_image = (lo, hi) == (0, image.size)

    def check(job: _Job) -> tuple[bool, bytes]:
        """(the chunk matches, what it adds to the image digest)."""
        if job.cid == FREE_ID:
            return True, FREE_ID
        n = job.hi - job.lo
        have = _read_target(reader, job, chunk, aligned)
        if len(have) != n:
            return False, b""
        whole = n == image.length(job.index)
        got = repo.ids.chunk_id(have) if whole else b""
        if whole and job.cid not in UNSTORED:
            return got == job.cid, got
        if job.cid == ZERO_ID:
            return have.count(0) == n, got
        return bytes(have) == image.span(job.index, job.lo, job.hi, job.cid), got

    progress.start(f"verify {target}", hi - lo)
    bad = 0
    digest = repo.ids.digest()
    try:
        for ok, got in ordered_map(check, _jobs(image, lo, hi), workers, cancel=cancel):
            bad += not ok
            digest.update(got)
            progress.advance(chunk)
    finally:
        progress.finish()
        reader.close()
    if bad:
        raise VerifyFailed(f"{bad} chunks of the restored image differ from the backup")
    if whole_image and digest.finish(image.size) != image.snap.image_digest:
        raise VerifyFailed("the restored image's digest differs from the one its backup recorded")
