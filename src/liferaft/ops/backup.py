"""Backup: image a source into the repository as one snapshot.

Chunks of free filesystem blocks and holes of image files are not read at all; the rest is read
(O_DIRECT on devices) with free bytes zeroed, all-zero chunks are only marked, and the others get
their keyed id and are stored unless the repository already holds them (incremental forever by
dedup). The chunk map is written as deduplicated metadata pieces, then the snapshot commits it all.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from liferaft.disk.imaging import Plan, Region, chunk_free, make_plan
from liferaft.errors import Interrupted, SourceUnreadable, UsageError
from liferaft.format.layout import DiskLayout, RegionRecord
from liferaft.ops.cancel import Cancel, check
from liferaft.ops.imager import Imager
from liferaft.ops.live import copy_live, use_tracking
from liferaft.ops.pipeline import default_workers, device_readers
from liferaft.ops.progress import NoProgress, Progress
from liferaft.repo.repository import Repository
from liferaft.source import providers
from liferaft.source.options import LiveOptions
from liferaft.source.providers import LiveView
from liferaft.source.usage import source_device

CLEAN = "clean"
CRASH = "crash-consistent"


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
    live: dict[str, Any] = field(default_factory=dict)
    """Live backups: passes, bytes re-read, the freeze window (freeze_ms), mountpoints."""
    notes: list[str] = field(default_factory=list)
    consistency: str = CLEAN
    """CLEAN (frozen and flushed, or never in use) or CRASH (as after a power cut)."""
    map_stored_bytes: int = 0
    """Stored for the snapshot's chunk map (its new pieces); the counts above are of the
    image's chunks alone, as ``show`` has them."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def backup(
    repo: Repository,
    source: str,
    provider: str = "auto",
    progress: Progress | None = None,
    workers: int | None = None,
    all_blocks: bool = False,
    live: LiveOptions | None = None,
    cancel: Cancel | None = None,
    host: str | None = None,
    lock_s: float | None = None,
    record_as: str | None = None,
) -> BackupResult:
    """Image source into the repository. provider 'auto' takes freeze_trace when filesystems of
    the source are mounted, plain otherwise. Unless all_blocks, free filesystem blocks are
    neither read nor stored (they restore as zeros). cancel: another thread may stop the backup
    (Interrupted, nothing committed). host: the host name recorded (default: this machine's);
    lock_s: Object Lock retention of what it writes (None: the repository's setting);
    record_as: the source the snapshot names, when not the path read (a spooled stream)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    options = live or LiveOptions()
    source, note = source_device(source)
    source = os.path.abspath(source)  # as the snapshot records it: --source finds it from any folder
    if note:
        options.notes.append(note)
    name = providers.choose(source) if provider == "auto" else provider
    view = providers.get(name).open(source, repo.config.chunk_size, options)
    reader = view.reader
    settled = view.live
    try:
        # before the used-block map is read, so that the maps on disk are current (journals
        # checkpointed by the freeze) and every later write is traced
        view.settle()
        plan = make_plan(reader.read_at, reader.info.size, all_blocks, settled)
        workers = workers or default_workers()
        readers = device_readers(workers) if reader.direct else workers
        im = Imager(repo, reader, progress, workers, readers, cancel, host=host, lock_s=lock_s)
        try:
            live_record: dict[str, Any] = {}
            if view.live:
                src = cast(LiveView, view)
                im.before_read = src.copying
                only, tracked = use_tracking(repo, im, src, source)
                done = copy_live(im, src, plan, lambda: make_plan(reader.read_at, reader.info.size, all_blocks, settled), only)
                plan = done.plan or plan
                live_record = {**done.record(), "mountpoints": src.mountpoints, "tracking": tracked}
            else:
                im.copy(chunk_free(plan.free_extents(), im.chunk, im.size), f"backup {reader.path}", im.size)
            zero, free = im.counts()
            lost: list[tuple[int, int]] = _merged(getattr(reader, "lost", []))  # rescue: what did not read
            lost_bytes = int(getattr(reader, "lost_bytes", 0))
            if lost_bytes:
                options.notes.append(_rescue_note(lost, lost_bytes, plan))
            stats = {
                "bytes_read": im.bytes_read,
                "zero_chunks": zero,
                "free_chunks": free,
                "new_chunks": im.writer.new_chunks,
                "new_bytes": im.writer.new_bytes,
                "stored_bytes": im.writer.stored_bytes,
                "seconds": round(time.monotonic() - started, 3),
                **({"lost": [list(r) for r in lost], "lost_bytes": lost_bytes} if lost_bytes else {}),
                **live_record,
            }
            consistency = CRASH if view.crash_consistent or plan.needs_recovery else CLEAN
            if consistency == CRASH:
                options.notes.append(_crash_note(name, plan))
            check(cancel)  # the last moment to stop: the commit is not interrupted half way
            sid = im.commit(name, stats, layout_record(plan, consistency), record_as or source)
        except BaseException as exc:
            im.abort()
            if isinstance(exc, KeyboardInterrupt):
                raise Interrupted() from None
            raise
        finally:
            im.close()
    finally:
        view.close()
    return BackupResult(
        snapshot_id=sid,
        source=record_as or source,
        provider=name,
        size=im.size,
        chunks=im.count,
        zero_chunks=zero,
        free_chunks=free,
        new_chunks=stats["new_chunks"],
        bytes_read=im.bytes_read,
        new_bytes=stats["new_bytes"],
        stored_bytes=stats["stored_bytes"],
        map_stored_bytes=im.writer.stored_bytes - stats["stored_bytes"],
        seconds=time.monotonic() - started,
        partitions=[asdict(_region(r)) for r in plan.regions],
        live=live_record,
        notes=list(options.notes),
        consistency=consistency,
    )


@contextmanager
def stdin_source(spool_dir: str | None = None, progress: Progress | None = None) -> Iterator[tuple[str, bool]]:
    """``backup -``: standard input as a source, (path, spooled). A file or device redirected
    in (``< /dev/sda``) is read where it is; a stream (``ssh host cat /dev/sda |``) is first
    spooled into a sparse file in spool_dir (zero MiBs become holes, so it costs the disk's used
    space), which is removed afterwards."""
    st = os.fstat(0)
    if stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode):
        yield os.readlink("/proc/self/fd/0"), False
        return
    if os.isatty(0):
        raise UsageError("standard input is a terminal: pipe or redirect a disk image into `liferaft backup -`")
    progress = progress or NoProgress()
    block = 1 << 20
    with tempfile.NamedTemporaryFile(dir=spool_dir, prefix="liferaft-stdin-", suffix=".img") as spool:
        zero, size = bytes(block), 0
        progress.start("spooling standard input", 0)
        try:
            while data := _read_full(0, block):
                if data != zero[: len(data)]:
                    os.pwrite(spool.fileno(), data, size)
                size += len(data)
                progress.advance(len(data))
        except OSError as exc:
            raise SourceUnreadable(path="standard input", detail=exc.strerror or str(exc)) from None
        finally:
            progress.finish()
        if size == 0:
            raise SourceUnreadable(path="standard input", detail="it was empty")
        os.ftruncate(spool.fileno(), size)
        yield spool.name, True


def _read_full(fd: int, n: int) -> bytes:
    """Up to n bytes from a pipe: fewer only at its end."""
    parts, got = [], 0
    while got < n:
        data = os.read(fd, n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _rescue_note(lost: list[tuple[int, int]], total: int, plan: Plan) -> str:
    where = sorted(
        {f"partition {r.partition.number}" if r.partition.number else "the filesystem"
         for r in plan.regions for a, b in lost if a < r.partition.start + r.partition.size and r.partition.start < b}
    )  # fmt: skip
    first = ", ".join(f"{a}-{b}" for a, b in lost[:4]) + (" ..." if len(lost) > 4 else "")
    return (
        f"rescue: {total} bytes in {len(lost)} ranges could not be read and were stored as zeros (bytes {first}"
        + (f"; in {', '.join(where)}" if where else "")
        + "); `liferaft show` lists them"
    )


def _crash_note(provider: str, plan: Plan) -> str:
    why = [f"partition {r.partition.number or '-'}: {r.recovery}" for r in plan.needs_recovery]
    return (
        f"the image is crash-consistent (as after a power cut; {provider}"
        + (f"; {'; '.join(why)}" if why else "")
        + "): restored, its filesystems recover when mounted; `restore --fsck` checks that they come up clean"
    )


def layout_record(plan: Plan, consistency: str = CLEAN) -> dict[str, Any]:
    """The snapshot's layout record (format/layout.py)."""
    lay = plan.layout
    return DiskLayout(
        table=lay.table,
        disk_uuid=lay.disk_uuid,
        consistency=consistency,
        partitions=tuple(lay.partitions),
        regions=tuple(_region(r) for r in plan.regions),
    ).to_dict()


def _region(r: Region) -> RegionRecord:
    info = r.fs.info if r.fs else None
    return RegionRecord(
        number=r.partition.number,
        start=r.partition.start,
        size=r.partition.size,
        filesystem=info.kind if info else "",
        label=info.label if info else "",
        uuid=info.uuid if info else "",
        block_size=info.block_size if info else 0,
        used=r.used_bytes,
        imaged="used blocks" if r.fs is not None and not r.fs.note else "whole",
        note=r.note,
        recovery=r.recovery,
    )
