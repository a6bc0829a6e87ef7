"""A FUSE filesystem with one file whose reads fail with EIO in a chosen byte range: a disk with
unreadable sectors, for real I/O errors without device-mapper (absent on this kernel).

Run as ``python -m tests.badsectors BACKING MOUNTPOINT BAD_START BAD_END [OPEN_ERRNO]``; it serves
``MOUNTPOINT/disk.img`` in the foreground until unmounted. With OPEN_ERRNO, opening the file
fails with that error instead (EPERM: what a hypervisor's or a container's device policy gives
root).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import Any

import mfusepy as fuse


class BadSectors(fuse.Operations):  # type: ignore[misc]
    def __init__(self, backing: str, bad_start: int, bad_end: int, open_errno: int = 0) -> None:
        self.fd = os.open(backing, os.O_RDONLY)
        self.open_errno = open_errno
        self.size = os.fstat(self.fd).st_size
        self.bad = (bad_start, bad_end)

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == "/disk.img":
            return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": self.size}
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", "disk.img"]

    def open(self, path: str, flags: int) -> int:
        if self.open_errno:
            raise fuse.FuseOSError(self.open_errno)
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        if offset < self.bad[1] and offset + size > self.bad[0]:
            raise fuse.FuseOSError(errno.EIO)
        return os.pread(self.fd, size, offset)


if __name__ == "__main__":
    backing, mountpoint, start, end = sys.argv[1:5]
    open_errno = getattr(errno, sys.argv[5]) if len(sys.argv) > 5 else 0
    fuse.FUSE(BadSectors(backing, int(start), int(end), open_errno), mountpoint, foreground=True, ro=True, direct_io=True)
