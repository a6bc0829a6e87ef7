"""Writing a restore target: an image file (sparse: zero chunks stay holes) or a block device
(zero chunks zeroed with BLKZEROOUT, falling back to writing zeros). Writes are os.pwrite, which
releases the GIL. Refuses targets in use, too small, or (without force) larger or existing."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from liferaft.errors import TargetError, TargetExists, TargetInUse, TargetLarger, TargetTooSmall
from liferaft.source.device import BLKGETSIZE64
from liferaft.source.usage import in_use

BLKZEROOUT = 0x127F
ZERO_BLOCK = bytes(1 << 20)


class TargetWriter:
    def __init__(self, path: str, image_size: int, force: bool = False) -> None:
        self.path = path
        self.image_size = image_size
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        self.is_device = st is not None and stat.S_ISBLK(st.st_mode)
        try:
            if self.is_device:
                self._open_device(force)
            else:
                self._open_file(st, force)
        except OSError as exc:
            raise TargetError(path=path, detail=exc.strerror or str(exc)) from None

    def _open_device(self, force: bool) -> None:
        holder = in_use(self.path)
        if holder is not None:
            raise TargetInUse(path=self.path, detail=holder)
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise TargetInUse(path=self.path, detail="held open exclusively by another program") from None
            raise
        size = struct.unpack("<Q", fcntl.ioctl(self.fd, BLKGETSIZE64, b"\0" * 8))[0]
        if size < self.image_size:
            os.close(self.fd)
            raise TargetTooSmall(path=self.path, target_size=size, image_size=self.image_size)
        if size > self.image_size and not force:
            os.close(self.fd)
            raise TargetLarger(path=self.path, target_size=size, image_size=self.image_size)

    def _open_file(self, st: os.stat_result | None, force: bool) -> None:
        if st is not None:
            if not stat.S_ISREG(st.st_mode):
                raise TargetError(path=self.path, detail="not a regular file or block device")
            if not force:
                raise TargetExists(path=self.path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.ftruncate(self.fd, self.image_size)

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        start = offset
        try:
            while view:
                n = os.pwrite(self.fd, view, offset)
                view, offset = view[n:], offset + n
            # start writeback of this range now, so the final fsync has little left to wait for
            os.posix_fadvise(self.fd, start, len(data), os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            detail = "the target's disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise TargetError(path=self.path, detail=f"{detail} at byte {offset}") from None

    def zero(self, offset: int, length: int) -> None:
        """Make [offset, offset+length) read as zeros: a hole in a fresh file, zeroed on a device."""
        if not self.is_device:
            return
        try:
            fcntl.ioctl(self.fd, BLKZEROOUT, struct.pack("<QQ", offset, length))
        except OSError:
            for at in range(offset, offset + length, len(ZERO_BLOCK)):
                self.write(at, ZERO_BLOCK[: min(len(ZERO_BLOCK), offset + length - at)])

    def finish(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise TargetError(path=self.path, detail=f"flushing failed: {exc.strerror}") from None
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
