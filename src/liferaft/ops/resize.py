"""Restore a whole disk onto a target of another size.

Larger: the image goes into the start of the target, the GPT backup header and entries move to
the new end; with ``grow`` the last partition is extended to the end and its filesystem grown
(resize2fs, ntfsresize). Smaller (``shrink``): the last partition is restored to a sparse staging
file and its filesystem shrunk there to fit; everything before it is restored to the target, the
shrunk filesystem copied after it, and the table fitted. A target too small even for the shrunk
filesystem is refused before anything is written, naming the minimum size.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from liferaft.disk.relayout import fit
from liferaft.errors import ResizeFailed, TargetTooSmall, UsageError
from liferaft.format.snapshot import Snapshot
from liferaft.ops.cancel import Cancel
from liferaft.ops.progress import NoProgress, Progress
from liferaft.ops.restore import RestoreResult, _write, kernel_view, restore
from liferaft.ops.snapshots import select
from liferaft.repo.image import SnapshotImage
from liferaft.repo.repository import Repository
from liferaft.target.loop import loop_device
from liferaft.target.writer import TargetWriter, staged

ALIGN = 1 << 20
RESIZABLE = ("ext2", "ext3", "ext4", "ntfs")


def _run(*cmd: str) -> str:
    run = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    ok = (0, 1) if cmd[0] == "e2fsck" else (0,)  # e2fsck: 1 = errors corrected
    if run.returncode not in ok:
        raise ResizeFailed(f"{' '.join(cmd)}: {(run.stderr or run.stdout).strip()[-300:]}")
    return run.stdout + run.stderr


def _last(snap: Snapshot) -> tuple[int, int, int, str]:
    """(number, start, end, filesystem) of the partition that ends last."""
    disk = snap.disk
    if not disk.has_table or not disk.data_partitions():
        raise UsageError("the snapshot has no partition table: --grow and --shrink work on whole disks")
    last = max(disk.data_partitions(), key=lambda p: p.end)
    region = disk.region(last.number)
    return last.number, last.start, last.end, region.filesystem if region else ""


def _tail(snap: Snapshot) -> int:
    return 33 * 512 if snap.disk.table == "gpt" else 0


def _resize_fs(dev: str, fs: str, size: int | None) -> None:
    """Grow the filesystem on dev to fill it (size None) or shrink it to size bytes."""
    if fs.startswith("ext"):
        _run("e2fsck", "-f", "-y", dev)
        _run("resize2fs", dev, *([f"{size // 1024}K"] if size else []))
    elif fs == "ntfs":
        _run("ntfsresize", "-f", "-f", *(["-s", str(size)] if size else []), dev)
    else:
        raise UsageError(f"cannot resize a {fs or 'unknown'} filesystem; resizable: {', '.join(RESIZABLE)}")


def _min_size(dev: str, fs: str) -> int:
    """The smallest size the filesystem on dev shrinks to, in bytes."""
    if fs.startswith("ext"):
        _run("e2fsck", "-f", "-y", dev)
        blocks = int(re.search(r"minimum size of the filesystem: (\d+)", _run("resize2fs", "-P", dev)).group(1))  # type: ignore[union-attr]
        bs = int(re.search(r"Block size:\s+(\d+)", _run("dumpe2fs", "-h", dev)).group(1))  # type: ignore[union-attr]
        return blocks * bs
    if fs == "ntfs":
        out = _run("ntfsresize", "-i", "-f", dev)
        return int(re.search(r"resize at (\d+) bytes", out).group(1))  # type: ignore[union-attr]
    raise UsageError(f"cannot shrink a {fs or 'unknown'} filesystem; shrinkable: {', '.join(RESIZABLE)}")


def _target_size(target: str, size: int | None) -> int:
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        if size is None:
            raise UsageError("a new target file needs --size when its size is to differ from the image's") from None
        return size
    try:
        dev_size = os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)
    is_device = Path(target).is_block_device()
    return dev_size if is_device else (size or dev_size)


def _edit(target: str, old: int, new: int, last_end: int | None) -> None:
    fd = os.open(target, os.O_RDWR)
    try:
        fit(lambda o, n: os.pread(fd, n, o), lambda o, b: _pwrite(fd, b, o), old, new, last_end)
        os.fsync(fd)
    finally:
        os.close(fd)


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    os.pwrite(fd, data, offset)


def restore_resized(
    repo: Repository, name: str, target: str, size: int | None = None, grow: bool = False, shrink: bool = False,
    force: bool = False, progress: Progress | None = None, staging: str | None = None, verify: bool = False,
    cancel: Cancel | None = None,
) -> RestoreResult:  # fmt: skip
    progress = progress or NoProgress()
    started = time.monotonic()
    sid = select(repo, name)
    snap = repo.load_snapshot(sid)
    new = _target_size(target, size)
    if new == snap.size:
        return restore(repo, sid, target, force=force, verify=verify, progress=progress, cancel=cancel)
    bare = new > snap.size and not grow and not snap.disk.has_table
    """No table to fit: the image goes into the start of the larger target, as it is."""
    if verify and not bare:  # the table (and perhaps a filesystem) is rewritten: chunks no longer match
        raise UsageError("--verify checks a restore of the same size; check a resized disk with its filesystems' fsck")
    with staged(target, force) as path:
        r = _resized(repo, sid, snap, path, new, bare, grow, shrink, progress, staging, verify, started, cancel)
    return dataclasses.replace(r, target=target, notes=kernel_view(target, snap))


def _resized(
    repo: Repository, sid: str, snap: Snapshot, target: str, new: int, bare: bool, grow: bool, shrink: bool,
    progress: Progress, staging: str | None, verify: bool, started: float, cancel: Cancel | None,
) -> RestoreResult:  # fmt: skip
    """restore_resized into target, a device or a file of this restore's own."""
    is_device = Path(target).is_block_device()
    if bare:
        r = restore(repo, sid, target, force=True, verify=verify, progress=progress, in_place=True, cancel=cancel)
        if not is_device:
            os.truncate(target, new)
        return r
    number, start, end, fs = _last(snap)
    tail = _tail(snap)
    if new > snap.size:
        r = restore(repo, sid, target, force=True, progress=progress, in_place=True, cancel=cancel)
        if not is_device:
            os.truncate(target, new)  # the new space, as a hole
        last_end = (new - tail) // ALIGN * ALIGN if grow else None
        _edit(target, snap.size, new, last_end)
        if grow and last_end:
            with loop_device(target, start, last_end - start) as dev:
                _resize_fs(dev, fs, None)
        return RestoreResult(sid, target, new, None, 0, r.chunks_written, r.zero_chunks, r.free_chunks,
                             r.bytes_written, False, time.monotonic() - started)  # fmt: skip
    if not shrink:
        raise TargetTooSmall(path=target, target_size=new, image_size=snap.size)
    last_end = (new - tail) // ALIGN * ALIGN
    with tempfile.TemporaryDirectory(prefix="liferaft-shrink-", dir=staging) as tmp:
        stage = os.path.join(tmp, "partition.img")
        restore(repo, sid, stage, partition=number, progress=progress, in_place=True, cancel=cancel)
        with loop_device(stage, 0, end - start) as dev:
            minimum = start + -(-_min_size(dev, fs) // ALIGN) * ALIGN + tail
            if new < minimum:  # refused before anything is written to the target
                raise TargetTooSmall(path=target, target_size=new, image_size=minimum)
            _resize_fs(dev, fs, last_end - start)
        writer = TargetWriter(target, new, force=True)
        with SnapshotImage(repo, snap) as image:
            stats = _write(image, writer, 0, start, progress, None, False, False, cancel)
        _copy(stage, target, start, last_end - start, dense=writer.is_device)
    _edit(target, snap.size, new, last_end)
    return RestoreResult(sid, target, new, None, 0, stats["written"], stats["zero"], stats["free"], stats["bytes"],
                         False, time.monotonic() - started)  # fmt: skip


def _copy(src: str, dst: str, at: int, length: int, dense: bool) -> None:
    """src's first length bytes into dst at offset at. Holes in src are skipped where dst is a
    fresh file (they read as zeros there already) and written as zeros when dense (a device may
    hold old data, and a filesystem may rely on zeroed blocks, such as unused inode tables)."""
    fin = os.open(src, os.O_RDONLY)
    fout = os.open(dst, os.O_WRONLY)
    try:
        pos = 0
        while pos < length:
            if dense:
                data_at, hole_at = pos, length
            else:
                try:
                    data_at = os.lseek(fin, pos, os.SEEK_DATA)
                except OSError:
                    break  # no more data
                hole_at = min(os.lseek(fin, data_at, os.SEEK_HOLE), length)
            pos = data_at
            while pos < hole_at:
                block = os.pread(fin, min(8 << 20, hole_at - pos), pos)
                if not block:
                    raise OSError(f"{src} ended early")
                os.pwrite(fout, block, at + pos)
                pos += len(block)
        os.fsync(fout)
    finally:
        os.close(fin)
        os.close(fout)
