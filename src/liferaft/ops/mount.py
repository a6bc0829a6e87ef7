"""A snapshot as files: a read-only FUSE filesystem with ``disk.img`` (the whole image) and
``partN.img`` per partition, read at random through the snapshot reader (``SnapshotImage``: a
bounded chunk cache and read-ahead); free and zero chunks read as zeros.

The FUSE loop (mfusepy over libfuse: pure Python over ctypes, so it also runs from the one-file
bundle on a rescue system) runs in a thread of its own; the calling thread keeps Python's signal
handling, so Ctrl-C and SIGTERM end a mount as they end any command, and leaving the ``Mount``
unmounts and waits for the loop, also after errors. A repository error while serving a read (a
pack deleted underneath, damage) gives the reader EIO and a log line, never wrong bytes.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liferaft.disk.fsfiles import CAN_SAY, files_hit
from liferaft.errors import LiferaftError, MountFailed
from liferaft.format.snapshot import Snapshot
from liferaft.ops.forget import moment
from liferaft.repo.image import SnapshotImage
from liferaft.repo.index import ChunkIndex
from liferaft.repo.repository import Repository

log = logging.getLogger("liferaft.mount")

MOUNT_WAIT_S = 30.0
"""How long the FUSE loop may take to make the mount (a bound, not a timing: it is ready in
milliseconds) and to end once unmounted."""


def image_files(snap: Snapshot) -> dict[str, tuple[int, int]]:
    """The files a mount of snap shows: name -> (offset in the image, size)."""
    files = {"disk.img": (0, snap.size)}
    disk = snap.disk
    parts = [(p.number, p.start, p.size) for p in disk.data_partitions()] if disk.has_table else []
    for number, start, size in parts:
        if number and start >= 0 and start + size <= snap.size:
            files[f"part{number}.img"] = (start, size)
    return files


def _fuse() -> Any:
    try:
        import mfusepy
    except (ImportError, OSError) as exc:  # the package, or libfuse itself, is missing
        raise MountFailed(f"FUSE is not available here ({exc}); install fuse3 (apt-get install fuse3)") from None
    return mfusepy


class _ImageFiles:
    """The FUSE operations (mfusepy calls them from its threads; SnapshotImage is thread-safe)."""

    use_ns = True

    def __init__(self, fuse: Any, image: SnapshotImage, files: dict[str, tuple[int, int]]) -> None:
        self.fuse, self.image, self.files = fuse, image, files
        self.errors = 0
        self.mtime = int(moment(image.snap).timestamp()) * 10**9  # the files' times: when the snapshot was taken

    def _file(self, path: str) -> tuple[int, int]:
        found = self.files.get(path.lstrip("/"))
        if found is None:
            raise self.fuse.FuseOSError(errno.ENOENT)
        return found

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        times = {"st_mtime": self.mtime, "st_atime": self.mtime, "st_ctime": self.mtime}
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, **times}
        _, size = self._file(path)
        return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": size, "st_blocks": -(-size // 512), **times}

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", *self.files]

    def open(self, path: str, flags: int) -> int:
        self._file(path)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise self.fuse.FuseOSError(errno.EROFS)
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        start, length = self._file(path)
        if offset >= length:
            return b""
        try:
            return self.image.read_at(start + offset, min(size, length - offset))
        except LiferaftError as exc:
            self.errors += 1
            log.error("%s bytes %d-%d: %s (the reader got EIO)", path.lstrip("/"), offset, offset + size, exc.message)
            raise self.fuse.FuseOSError(errno.EIO) from None

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": -(-self.image.size // 4096), "f_namemax": 255}


class Mount:
    """``with Mount(repo, snap, directory):`` the snapshot's files are under directory."""

    def __init__(self, repo: Repository, snap: Snapshot, directory: Path, index: ChunkIndex | None = None) -> None:
        self.directory = Path(directory)
        self._fuse = _fuse()
        self.image = SnapshotImage(repo, snap, index)
        self.files = image_files(snap)
        self._ops = _ImageFiles(self._fuse, self.image, self.files)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def read_errors(self) -> int:
        """Reads that got EIO (a repository error; each was logged)."""
        return self._ops.errors

    def _serve(self) -> None:
        try:
            self._fuse.FUSE(
                self._ops, str(self.directory), foreground=True, ro=True, fsname="liferaft", subtype="liferaft",
                default_permissions=True,
            )  # fmt: skip
        except BaseException as exc:  # reported by __enter__ (or ignored after an unmount)
            self._failure = exc

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Mount:
        if not self.directory.is_dir():
            self.image.close()
            raise MountFailed(f"{self.directory} is not a directory")
        if os.path.ismount(self.directory):
            self.image.close()
            raise MountFailed(f"{self.directory} is a mount point already (`liferaft umount {self.directory}`)")
        self._thread = threading.Thread(target=self._serve, name="fuse", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + MOUNT_WAIT_S
        while not os.path.ismount(self.directory):
            if not self.alive or time.monotonic() > deadline:
                self.__exit__()
                why = f": {self._failure}" if self._failure else ""
                raise MountFailed(f"the FUSE mount on {self.directory} could not be made{why} (is /dev/fuse there?)")
            time.sleep(0.01)
        return self

    def wait(self) -> None:
        """Until the mount goes away (``liferaft umount`` or umount)."""
        while self.alive:
            assert self._thread is not None
            self._thread.join(0.5)  # wakes for signals

    def __exit__(self, *exc: object) -> None:
        try:
            if os.path.ismount(self.directory):  # also where the loop ended on its own (a signal)
                unmount(self.directory)
            if self._thread is not None:
                self._thread.join(MOUNT_WAIT_S)
        finally:
            self.image.close()


def unmount(directory: Path) -> None:
    """Unmount a liferaft mount (lazily if it is busy: it goes once the last reader closes)."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    for cmd in ([tool, "-u", str(directory)] if tool else None, ["umount", str(directory)], ["umount", "-l", str(directory)]):
        if cmd is None:
            continue
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return
    if os.path.ismount(directory):
        raise MountFailed(f"{directory} could not be unmounted ({r.stderr.strip()})")


@dataclass(slots=True)
class PartitionFiles:
    """The files of one partition that given bytes of an image fall in."""

    partition: str
    """'partition 2 (ext4)', or 'the filesystem' for an image without a table."""
    files: list[str] | None
    """None: the filesystem cannot say (not ext, or the mount or debugfs failed: see note)."""
    other_bytes: int = 0
    note: str = ""


def _cannot(fs: str) -> str:
    return f"{fs} cannot say which files (only ext can, here)" if fs else "no filesystem was recognised there"


def files_in(
    repo: Repository, snap: Snapshot, ranges: list[tuple[int, int]], index: ChunkIndex | None = None
) -> list[PartitionFiles]:  # fmt: skip
    """For byte ranges [start, end) of snap's image (lost ones, say): per partition they fall in,
    the files there, read through a mount of the snapshot (debugfs reads only metadata)."""
    hits = []
    for r in snap.disk.regions:
        end = r.start + r.size
        inside = [(max(a, r.start) - r.start, min(b, end) - r.start) for a, b in ranges if a < end and r.start < b]
        if inside:
            name = f"partition {r.number}" if r.number else "the filesystem"
            hits.append((r, f"{name} ({r.filesystem})" if r.filesystem else name, inside))
    out = [PartitionFiles(name, None, note="" if r.filesystem in CAN_SAY else _cannot(r.filesystem)) for r, name, _ in hits]
    if not any(r.filesystem in CAN_SAY for r, _, _ in hits):
        return out
    try:
        with tempfile.TemporaryDirectory(prefix="liferaft-mount-") as tmp, Mount(repo, snap, Path(tmp), index) as m:
            for (r, _, inside), result in zip(hits, out, strict=True):
                if r.filesystem not in CAN_SAY:
                    continue
                path = m.directory / (f"part{r.number}.img" if r.number else "disk.img")
                hit = files_hit(path, r.filesystem, r.block_size, inside)
                if hit is not None:
                    result.files, result.other_bytes, result.note = hit.files, hit.other_bytes, hit.note
    except MountFailed as exc:
        for result in out:
            result.note = result.note or exc.message
    return out
