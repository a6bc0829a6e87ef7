"""The Linux ioctls liferaft uses, one function each. ``fcntl`` is imported inside them, so this
module imports anywhere; a call on a platform without it raises OSError (ENOSYS), which every
caller already handles as "not supported here"."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
from types import ModuleType

BLKGETSIZE64 = 0x80081272
BLKRRPART = 0x125F
BLKZEROOUT = 0x127F
BLKDISCARD = 0x1277
FICLONE = 0x40049409
FICLONERANGE = 0x4020940D


def _fcntl() -> ModuleType:
    try:
        import fcntl
    except ImportError:
        raise OSError(errno.ENOSYS, "not supported on this platform") from None
    return fcntl


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):  # no C library to load by that name here
        return None
    if hasattr(libc, "sync_file_range"):
        libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return libc


def _call(name: str, *args: int) -> None:
    fn = getattr(_libc(), name, None)
    if fn is None:
        raise OSError(errno.ENOSYS, f"{name} is not supported on this platform")
    if fn(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def sync_file_range(fd: int, offset: int, length: int, flags: int) -> None:
    """sync_file_range(2): start (or wait for) the writeback of a file range."""
    _call("sync_file_range", fd, offset, length, flags)


def syncfs(fd: int) -> None:
    """syncfs(2): write back one filesystem's dirty pages and journal."""
    _call("syncfs", fd)


def block_size(fd: int) -> int:
    """Bytes in an open block device."""
    buf = _fcntl().ioctl(fd, BLKGETSIZE64, b"\0" * 8)
    return int(struct.unpack("<Q", buf)[0])


def reread_partitions(fd: int) -> None:
    _fcntl().ioctl(fd, BLKRRPART)


def zero_out(fd: int, offset: int, length: int) -> None:
    _fcntl().ioctl(fd, BLKZEROOUT, struct.pack("<QQ", offset, length))


def discard(fd: int, offset: int, length: int) -> None:
    _fcntl().ioctl(fd, BLKDISCARD, struct.pack("<QQ", offset, length))


def clone(dest: int, src: int) -> None:
    """dest becomes a copy-on-write clone of src (XFS with reflink, btrfs)."""
    _fcntl().ioctl(dest, FICLONE, src)


def clone_range(dest: int, src: int, offset: int, length: int) -> None:
    """Bytes [offset, offset + length) of src shared into dest from its start."""
    _fcntl().ioctl(dest, FICLONERANGE, struct.pack("<qQQQ", src, offset, length, 0))


def lock_exclusive(fd: int) -> None:
    """An exclusive flock, not waiting; OSError when another holds it."""
    fcntl = _fcntl()
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
