"""benchmarks/fuse-bindings.py REPO MOUNTPOINT: serve the latest snapshot's disk.img through
pyfuse3 (libfuse 3, trio; each read in a worker thread) until unmounted, for benchmarks/mount to
read beside the same file served by liferaft's own mount (mfusepy). LIFERAFT_PASSWORD opens
REPO. The mount's binding is chosen by this measurement (docs/design.md, "Mounting a snapshot")."""

from __future__ import annotations

import errno
import os
import stat
import sys

import pyfuse3
import trio

import liferaft
from liferaft.repo.image import SnapshotImage

FILE = pyfuse3.ROOT_INODE + 1


class DiskImage(pyfuse3.Operations):  # type: ignore[misc]
    def __init__(self, image: SnapshotImage) -> None:
        super().__init__()
        self.image = image

    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == pyfuse3.ROOT_INODE:
            a.st_mode, a.st_nlink = stat.S_IFDIR | 0o555, 2
        else:
            a.st_mode, a.st_nlink, a.st_size = stat.S_IFREG | 0o444, 1, self.image.size
        return a

    async def getattr(self, inode: int, ctx: object = None) -> pyfuse3.EntryAttributes:
        return self._attr(inode)

    async def lookup(self, parent: int, name: bytes, ctx: object = None) -> pyfuse3.EntryAttributes:
        if parent != pyfuse3.ROOT_INODE or name != b"disk.img":
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(FILE)

    async def opendir(self, inode: int, ctx: object) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: object) -> None:
        if start_id == 0:
            pyfuse3.readdir_reply(token, b"disk.img", self._attr(FILE), 1)

    async def open(self, inode: int, flags: int, ctx: object) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=inode)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await trio.to_thread.run_sync(self.image.read_at, off, size)


def main() -> None:
    repo_path, where = sys.argv[1:3]
    repo = liferaft.open_repository(repo_path, os.environ["LIFERAFT_PASSWORD"].encode())
    sid, snap = sorted(repo.snapshots(), key=lambda s: s[1].time)[-1]
    with SnapshotImage(repo, snap) as image:
        options = set(pyfuse3.default_options)
        options |= {"fsname=pyfuse3-bench", "ro"}
        pyfuse3.init(DiskImage(image), where, options)
        try:
            trio.run(pyfuse3.main)
        finally:
            pyfuse3.close()


if __name__ == "__main__":
    main()
