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

import ctypes.util
import errno
import logging
import os
import shutil
import signal
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

THREADS = 16
"""FUSE requests served at once, at most (libfuse 3)."""
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
    if not {"FUSE_LIBRARY_PATH", "FUSE_LIBRARY_NAME"} & set(os.environ) and ctypes.util.find_library("fuse3"):
        os.environ["FUSE_LIBRARY_NAME"] = "fuse3"  # mfusepy takes libfuse 2 first where both are installed
    try:
        import mfusepy
    except (ImportError, OSError) as exc:  # the package, or libfuse itself, is missing
        raise MountFailed(f"FUSE is not available here ({exc}); install fuse3 (apt-get install fuse3)") from None
    return mfusepy


class _ImageFiles:
    """The FUSE operations (mfusepy calls them from its threads; SnapshotImage is thread-safe)."""

    use_ns = True

    def __init__(self, fuse: Any, image: SnapshotImage, files: dict[str, tuple[int, int]], dirs: list[str]) -> None:
        self.fuse, self.image, self.files, self.dirs = fuse, image, files, dirs
        self.mtime = int(moment(image.snap).timestamp()) * 10**9  # the files' times: when the snapshot was taken

    def _file(self, path: str) -> tuple[int, int]:
        found = self.files.get(path.lstrip("/"))
        if found is None:
            raise self.fuse.FuseOSError(errno.ENOENT)
        return found

    def init_with_config(self, conn: Any, config: Any) -> None:
        """libfuse 3: direct I/O, so that a read goes to this process as the reader sized it (up
        to 1 MiB a request), and is copied once, into the reader's buffer, not through the page
        cache in 128 KiB read-ahead requests (measured: 4 GiB read with dd in 2.7-2.9 s, against
        3.2-3.8 s with a 4 MiB read-ahead, 5.7 s with libfuse 2)."""
        if config is not None:
            config.direct_io = 1

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        times = {"st_mtime": self.mtime, "st_atime": self.mtime, "st_ctime": self.mtime}
        if path == "/" or path.lstrip("/") in self.dirs:  # the root, and where --browse mounts filesystems
            return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, **times}
        _, size = self._file(path)
        return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": size, "st_blocks": -(-size // 512), **times}

    def readdir(self, path: str, fh: Any) -> list[str]:
        if path != "/":
            return [".", ".."]  # a folder --browse did not mount on
        return [".", "..", *self.files, *self.dirs]

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
            log.error("%s bytes %d-%d: %s (the reader got EIO)", path.lstrip("/"), offset, offset + size, exc.message)
            raise self.fuse.FuseOSError(errno.EIO) from None

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": -(-self.image.size // 4096), "f_namemax": 255}


BROWSE = {
    "ext2": ["-t", "ext2", "-o", "ro,loop"],
    "ext3": ["-t", "ext3", "-o", "ro,loop,noload"],
    "ext4": ["-t", "ext4", "-o", "ro,loop,noload"],
    "xfs": ["-t", "xfs", "-o", "ro,loop,norecovery,nouuid"],
    "btrfs": ["-t", "btrfs", "-o", "ro,loop,rescue=nologreplay"],
    "vfat": ["-t", "vfat", "-o", "ro,loop"],
}
"""How --browse mounts each filesystem: read-only, and without replaying a journal or log (the
image must not change; a crash-consistent image shows its files as of the last commit)."""


class Mount:
    """``with Mount(repo, snap, directory):`` the snapshot's files are under directory; with
    browse, each filesystem in them is mounted read-only under directory/partN (or
    directory/fs, for an image without a partition table)."""

    def __init__(
        self, repo: Repository, snap: Snapshot, directory: Path, index: ChunkIndex | None = None, browse: bool = False
    ) -> None:  # fmt: skip
        self.directory = Path(directory)
        self._fuse = _fuse()
        self.image = SnapshotImage(repo, snap, index)
        self.files = image_files(snap)
        self.browse = browse
        parts = [n for n in self.files if n != "disk.img"] or ["disk.img"]
        self._browsed = {name: "fs" if name == "disk.img" else name.removesuffix(".img") for name in parts} if browse else {}
        self._ops = _ImageFiles(self._fuse, self.image, self.files, list(self._browsed.values()))
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._sigpipe: signal._HANDLER = None
        self.mounted: dict[str, str] = {}
        """With browse: folder -> the filesystem mounted there."""
        self.notes: list[str] = []
        """With browse: what could not be mounted, and why."""

    def _serve(self) -> None:
        try:
            # libfuse 3's loop, bounded (3.14 warns of an unset idle-thread bound); libfuse 2 knows neither option
            more = {"max_threads": THREADS, "max_idle_threads": THREADS} if self._fuse.fuse_version_major == 3 else {}
            self._fuse.FUSE(
                self._ops, str(self.directory), foreground=True, ro=True, fsname="liferaft", subtype="liferaft",
                default_permissions=True, **more,
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
        self._sigpipe = signal.getsignal(signal.SIGPIPE)
        self._thread = threading.Thread(target=self._serve, name="fuse", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + MOUNT_WAIT_S
        while not os.path.ismount(self.directory):
            if not self.alive or time.monotonic() > deadline:
                self.__exit__()
                why = f": {self._failure}" if self._failure else ""
                raise MountFailed(f"the FUSE mount on {self.directory} could not be made{why} (is /dev/fuse there?)")
            time.sleep(0.01)
        if self.browse:
            try:
                self._mount_filesystems()
            except BaseException:
                self.__exit__()
                raise
        return self

    def _mount_filesystems(self) -> None:
        kernel = Path("/proc/filesystems").read_text().split()
        for name, folder in self._browsed.items():
            image, where = self.directory / name, self.directory / folder
            probe = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", str(image)], capture_output=True, text=True)
            fs = probe.stdout.strip()
            if not fs:
                self.notes.append(f"{folder}: no filesystem recognised")
                continue
            if fs == "ntfs":
                cmd = ["ntfs-3g", "-o", "ro", str(image), str(where)]
            elif fs in BROWSE and (fs != "vfat" or "vfat" in kernel):
                cmd = ["mount", *BROWSE[fs], str(image), str(where)]
            else:
                why = "this kernel has no vfat: read it with mtools (mcopy -i" if fs == "vfat" else "not mountable here ("
                self.notes.append(f"{folder}: {fs}, {why} {image})")
                continue
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                self.notes.append(f"{folder}: {fs} did not mount ({done.stderr.strip() or done.returncode})")
                continue
            self.mounted[folder] = fs

    def wait(self) -> None:
        """Until the mount goes away (``liferaft umount`` or umount)."""
        while self.alive:
            assert self._thread is not None
            self._thread.join(0.5)  # wakes for signals

    def __exit__(self, *exc: object) -> None:
        try:
            if os.path.ismount(self.directory):  # also where the loop ended on its own (a signal)
                unmount(self.directory)
            self.mounted.clear()
            if self._thread is not None:
                self._thread.join(MOUNT_WAIT_S)
        finally:
            self.image.close()
            # libfuse, ending, sets SIGPIPE to its default (death) where it found it ignored, as
            # Python leaves it: a later write to a closed pipe would kill this process outright
            if self._sigpipe is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGPIPE, self._sigpipe)


def unmount(directory: Path) -> None:
    """Unmount a liferaft mount and what --browse mounted under it, those first (each lazily if
    it is busy: it goes once the last reader closes)."""
    inside = str(directory.resolve()).rstrip("/") + "/"
    below = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(inside)]
    for where in sorted(below, key=len, reverse=True):
        _unmount_one(Path(where.replace("\\040", " ")))
    _unmount_one(directory)


def _unmount_one(directory: Path) -> None:
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
            hits.append((r, r.title, inside))
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
