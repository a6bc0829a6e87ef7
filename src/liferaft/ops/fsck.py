"""``restore --fsck``: prove that a restored image's filesystems come up clean.

A crash-consistent snapshot (a reflink clone of a running VM's disk, a dead machine's disk) holds
filesystems that replay their journals when mounted. ``restore --verify`` proves the bytes are the
backed-up bytes, but cannot see what the backup left out as free. This check copies each
recognised filesystem of the restored target to a throw-away sparse file (a reflink clone where
the folder's filesystem has them), replays its journal there, runs the filesystem's own check,
and compares the replayed filesystem's used blocks with the snapshot's free chunks: a block in
use after the replay that the snapshot held as free is data the image lost. The target itself is
never written.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from liferaft.disk.fsmap import detect
from liferaft.errors import FsckFailed
from liferaft.format import FREE_ID
from liferaft.format.snapshot import Snapshot
from liferaft.repo.image import SnapshotImage
from liferaft.repo.repository import Repository
from liferaft.source.linux import kernel

COPY_PIECE = 8 << 20


@dataclass(frozen=True, slots=True)
class Checked:
    number: int
    filesystem: str
    verdict: str
    """What was checked and found, one line."""


def _checks(fs: str) -> list[list[str]] | None:
    """The commands that replay (where needed) and check a filesystem in a file, or None."""
    if fs.startswith("ext"):
        return [["e2fsck", "-E", "journal_only", "-y"], ["e2fsck", "-fn"]]
    if fs == "ntfs":
        return [["ntfsfix", "-n"]]
    if fs.startswith("fat"):
        return [["fsck.vfat", "-n"]]
    return None


def _copy(target: str, start: int, size: int, dest: int) -> None:
    """Bytes [start, start + size) of target into dest, sparse: a reflink where possible, else
    the data segments (SEEK_DATA) of a file, or the non-zero pieces of a device."""
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(dest, size)
        try:
            kernel.clone_range(dest, fd, start, size)
            return
        except OSError:
            pass
        for at, n in _segments(fd, start, size):
            done = 0
            while done < n:
                k = min(COPY_PIECE, n - done)
                data = os.pread(fd, k, at + done)
                if not data:
                    return
                if data.count(0) != len(data):
                    os.pwrite(dest, data, at + done - start)
                done += len(data)
    finally:
        os.close(fd)


def _segments(fd: int, start: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of the data in [start, start + size): a file's data segments; all of it
    on a device."""
    end = start + size
    if stat.S_ISBLK(os.fstat(fd).st_mode):
        yield start, size
        return
    at = start
    while at < end:
        try:
            at = os.lseek(fd, at, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after at
            return
        if at >= end:
            return
        hole = min(os.lseek(fd, at, os.SEEK_HOLE), end)
        yield at, hole - at
        at = hole


def _free_chunks(repo: Repository, snap: Snapshot) -> bytearray:
    """One byte per chunk: 1 where the snapshot holds the chunk as free."""
    with SnapshotImage(repo, snap) as image:
        return bytearray(cid == FREE_ID for cid in image.entries())


def _lost_bytes(copy: str, start: int, chunk: int, free: bytearray) -> int:
    """Bytes in use after the replay that lie in chunks the snapshot held as free; start: where
    the filesystem begins in the image."""
    fd = os.open(copy, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fs = detect(lambda o, n: os.pread(fd, n, o), os.fstat(fd).st_size)
        if fs is None:
            return 0
        lost, at = 0, 0
        for off, length in [*fs.free_extents(), (fs.info.size, 0)]:
            lo, hi = start + at, start + off  # a used run, in image bytes
            i = free.find(1, lo // chunk, -(-hi // chunk))
            while i >= 0:
                lost += min(hi, (i + 1) * chunk) - max(lo, i * chunk)
                i = free.find(1, i + 1, -(-hi // chunk))
            at = off + length
        return lost
    finally:
        os.close(fd)


def check(repo: Repository, snap: Snapshot, target: str, partition: int | None, scratch: str | None) -> list[Checked]:
    """Check every recognised filesystem that was restored to target (one partition's, when
    partition is given); raises FsckFailed naming the first that is not clean."""
    regions = list(snap.disk.regions)
    if partition is not None:
        regions = [r for r in regions if r.number == partition]
    folder = scratch or (str(Path(target).resolve().parent) if Path(target).is_file() else None)
    free = _free_chunks(repo, snap)
    out: list[Checked] = []
    for r in regions:
        fs, number = r.filesystem, r.number
        commands = _checks(fs)
        if commands is None:
            out.append(Checked(number, fs or "?", "not checked: liferaft knows no check for it"))
            continue
        start = 0 if partition is not None else r.start
        image_start = r.start
        with tempfile.NamedTemporaryFile(prefix=".liferaft-fsck-", dir=folder) as tmp:
            _copy(target, start, r.size, tmp.fileno())
            for cmd in commands:
                done = subprocess.run([*cmd, tmp.name], capture_output=True, text=True, check=False)
                # e2fsck's journal replay exits 1 when it changed something: that is the replay
                if done.returncode not in ((0, 1) if "journal_only" in cmd else (0,)):
                    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
                    raise FsckFailed(
                        partition=number or "-", fs=fs, detail=f"{cmd[0]} exit {done.returncode}: {' | '.join(tail)}"
                    )
            lost = _lost_bytes(tmp.name, image_start, snap.chunk_size, free)
        if lost:
            raise FsckFailed(
                partition=number or "-",
                fs=fs,
                detail=f"{lost} bytes are in use after the journal replay but were backed up as free (data lost)",
            )
        replay = " after its journal replay" if r.recovery else ""
        out.append(Checked(number, fs, f"clean{replay} ({' '.join(commands[-1])}); no block in use was backed up as free"))
    return out
