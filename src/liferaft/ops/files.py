"""Files and folders out of a snapshot, without restoring the disk: the snapshot is mounted with
its filesystems (``Mount(browse=True)``) and each path is copied under the target folder at its
own path (``/etc/nginx`` to ``TARGET/etc/nginx``), with owner, mode, times (nanoseconds), extended
attributes (ACLs are ``system.posix_acl_*`` attributes, SELinux labels ``security.*``), symlinks,
hard links, device nodes and FIFOs, and holes (only the data segments are copied, each with
``copy_file_range``, which moves the bytes in the kernel).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from liferaft.errors import FileNotInSnapshot, TargetExists, UsageError
from liferaft.format.snapshot import Snapshot
from liferaft.ops.mount import Mount
from liferaft.ops.progress import NoProgress, Progress
from liferaft.repo.repository import Repository

SEGMENT = 64 << 20
"""Bytes one copy_file_range call moves at most (progress is reported between calls)."""


@dataclass(slots=True)
class FilesResult:
    snapshot_id: str
    partition: str
    """The folder of the mount the files came from ('part2', 'fs')."""
    target: str
    files: int = 0
    folders: int = 0
    links: int = 0
    """Symlinks, hard links, device nodes and FIFOs."""
    bytes: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    """Metadata the target could not take (an attribute its filesystem lacks)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_files(
    repo: Repository, sid: str, snap: Snapshot, paths: list[str], target: Path, partition: int | None = None,
    progress: Progress | None = None,
) -> FilesResult:  # fmt: skip
    progress = progress or NoProgress()
    started = time.monotonic()
    wanted = [p.strip("/") for p in paths]
    if any(not p or ".." in Path(p).parts for p in wanted):
        raise UsageError("name each path inside the snapshot's filesystem, such as /etc/nginx (no '..', not '/')")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="liferaft-files-") as tmp, Mount(repo, snap, Path(tmp), browse=True) as m:
        folder = _partition(m, wanted, partition)
        root = m.directory / folder
        for p in wanted:
            if os.path.lexists(target / p):
                raise TargetExists(f"{target / p} exists: restore into an empty folder (--to)")
        total = sum(_size(root / p) for p in wanted)
        progress.start(f"files from {folder}", total)
        result = FilesResult(sid, folder, str(target))
        links: dict[tuple[int, int], Path] = {}
        for p in wanted:
            (target / p).parent.mkdir(parents=True, exist_ok=True)
            _copy(root / p, target / p, result, links, progress)
        progress.finish()
    result.seconds = time.monotonic() - started
    return result


def _partition(m: Mount, wanted: list[str], number: int | None) -> str:
    """The mounted filesystem that holds every path: the one named, or the only one that does."""
    if number is not None:
        folder = f"part{number}"
        if folder not in m.mounted:
            have = ", ".join(f"{f} ({fs})" for f, fs in m.mounted.items()) or "none"
            raise UsageError(f"partition {number} holds no filesystem this machine mounts (mounted: {have})")
        candidates = [folder]
    else:
        candidates = list(m.mounted)
    missing = []
    for p in wanted:
        holding = [f for f in candidates if os.path.lexists(m.directory / f / p)]
        if not holding:
            missing.append("/" + p)
        candidates = holding or candidates
    if missing:
        where = f"partition {number}" if number is not None else ", ".join(m.mounted) or "no filesystem it could mount"
        raise FileNotInSnapshot(f"{', '.join(missing)} (looked in {where}; {'; '.join(m.notes) or 'see liferaft show'})")
    if len(candidates) > 1:
        raise UsageError(f"{', '.join(candidates)} all hold these paths: choose one with --partition N")
    return candidates[0]


def _size(path: Path) -> int:
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    return sum(_size(path / name) for name in os.listdir(path))


def _copy(src: Path, dst: Path, result: FilesResult, links: dict[tuple[int, int], Path], progress: Progress) -> None:
    st = src.lstat()
    mode = st.st_mode
    if not stat.S_ISDIR(mode) and st.st_nlink > 1:
        first = links.get((st.st_dev, st.st_ino))
        if first is not None:
            os.link(first, dst)
            result.links += 1
            return
        links[(st.st_dev, st.st_ino)] = dst
    if stat.S_ISDIR(mode):
        dst.mkdir()
        for name in sorted(os.listdir(src)):
            _copy(src / name, dst / name, result, links, progress)
        result.folders += 1
    elif stat.S_ISREG(mode):
        _copy_data(src, dst, st.st_size, progress)
        result.files += 1
        result.bytes += st.st_size
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
        result.links += 1
    else:  # a device node, FIFO or socket
        os.mknod(dst, mode, st.st_rdev)
        result.links += 1
    _metadata(src, dst, st, result)


def _copy_data(src: Path, dst: Path, size: int, progress: Progress) -> None:
    """The data segments of src into a new dst (holes stay holes), then its size. Each segment
    moves in the kernel: copy_file_range, or sendfile where the two filesystems differ in kind
    (copy_file_range refuses that with EXDEV)."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        i, o = fin.fileno(), fout.fileno()
        at, across = 0, False
        while at < size:
            try:
                start = os.lseek(i, at, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(i, start, os.SEEK_HOLE)
            while start < end:
                count = min(SEGMENT, end - start)
                if not across:
                    try:
                        n = os.copy_file_range(i, o, count, start, start)
                    except OSError as exc:
                        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                            raise
                        across = True
                if across:
                    os.lseek(o, start, os.SEEK_SET)
                    n = os.sendfile(o, i, start, count)
                if n == 0:
                    break
                start += n
                progress.advance(n)
            at = end
        os.ftruncate(o, size)


def _metadata(src: Path, dst: Path, st: os.stat_result, result: FilesResult) -> None:
    link = stat.S_ISLNK(st.st_mode)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)  # before the mode: chown clears set-id bits
    if not link:
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        for name in os.listxattr(src, follow_symlinks=False):
            try:
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
            except OSError as exc:
                result.warnings.append(f"{dst}: attribute {name} not kept ({exc.strerror})")
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
