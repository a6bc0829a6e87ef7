"""Reading a source: block devices with O_DIRECT into page-aligned buffers (so the bytes are
what is on the device, not a stale page cache), image files with positional reads through the
page cache (measured: O_DIRECT on files saves CPU but loses the kernel's readahead, and was
slower), holes in image files not at all.

Reads are os.preadv/os.pread, which release the GIL, so a pool of threads reads in parallel.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import threading
from dataclasses import dataclass
from typing import Protocol

from liferaft.errors import SourceUnreadable
from liferaft.source.linux import kernel


@dataclass(frozen=True, slots=True)
class SourceInfo:
    path: str
    kind: str
    """'device' or 'file'."""
    size: int


def size_of(fd: int, is_device: bool) -> int:
    """Bytes in the open device (BLKGETSIZE64) or file."""
    if is_device:
        return kernel.block_size(fd)
    return os.fstat(fd).st_size


class ChunkSource(Protocol):
    """What an image is made from, chunk by chunk: a device or file (``SourceReader``), or
    another repository's snapshot (``ops.copy``)."""

    path: str
    info: SourceInfo
    direct: bool
    """Reads wait on a device (O_DIRECT: no kernel readahead, so threads read ahead)."""

    @property
    def chunk_count(self) -> int: ...

    def read(self, index: int) -> bytes | bytearray: ...

    def is_hole(self, index: int) -> bool: ...


def _refused(exc: PermissionError) -> str:
    """What a refused open means: to a user, that root may read it; to root, what refuses root."""
    code = errno.errorcode.get(exc.errno or 0, "EPERM")
    if os.geteuid() != 0:
        return f"permission denied ({code}): run as root, or as a user allowed to read it (the disk group)"
    return (
        f"the system refused even root ({code}: {exc.strerror}): a container's or a hypervisor's device policy, "
        "a security module (AppArmor, SELinux), or a filesystem that refuses the open (FUSE) does this; "
        "see `dmesg` and the host's settings"
    )


SECTOR = 4096
"""What a chunk is read in, around an I/O error: the unit a disk fails in (4 KiB, or its 512-byte
sectors when a 4 KiB read fails and the source allows them)."""
MAX_LOST_RANGES = 10_000
"""Lost ranges kept one by one; beyond, only their total is counted (a disk failing everywhere)."""


class SourceReader:
    """Positional reads of fixed-size chunks; thread-safe (one aligned buffer per thread).

    An I/O error in a chunk is found to the sector: without ``rescue`` the read fails naming that
    byte; with it, what reads is kept, each unreadable sector reads as zeros, and the lost byte
    ranges are kept in ``lost`` (as GNU ddrescue or Clonezilla's -rescue do)."""

    def __init__(self, path: str, chunk_size: int, limit: int | None = None, rescue: bool = False) -> None:
        self.path = path
        self.chunk_size = chunk_size
        self.rescue = rescue
        self.lost: list[tuple[int, int]] = []
        """Byte ranges that could not be read (rescue), merged, in no particular order."""
        self.lost_bytes = 0
        self._lost_lock = threading.Lock()
        try:
            st = os.stat(path)
            is_device = stat.S_ISBLK(st.st_mode)
            if not (is_device or stat.S_ISREG(st.st_mode)):
                raise SourceUnreadable(path=path, detail="not a block device or regular file")
            self.direct = is_device
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECT if is_device else 0))
        except FileNotFoundError:
            raise SourceUnreadable(path=path, detail="no such file or device") from None
        except PermissionError as exc:
            raise SourceUnreadable(path=path, detail=_refused(exc)) from None
        except OSError as exc:
            raise SourceUnreadable(path=path, detail=exc.strerror or str(exc)) from None
        self.is_device = is_device
        size = size_of(self.fd, is_device)
        self.info = SourceInfo(path, "device" if is_device else "file", size if limit is None else min(size, limit))
        self._local = threading.local()
        if not self.direct:
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    @property
    def chunk_count(self) -> int:
        return -(-self.info.size // self.chunk_size)

    def read_at(self, offset: int, length: int) -> bytes:
        """Bytes at any offset (fewer at the end of the source): for parsing partition tables
        and filesystem metadata. O_DIRECT alignment is handled here."""
        length = max(0, min(length, self.info.size - offset))
        if length == 0 or offset < 0:
            return b""
        try:
            if not self.direct:
                return os.pread(self.fd, length, offset)
            start = offset - offset % mmap.PAGESIZE
            span = -(-(offset + length - start) // mmap.PAGESIZE) * mmap.PAGESIZE
            with mmap.mmap(-1, span) as buf:
                got = os.preadv(self.fd, [buf], start)
                return buf[offset - start : min(offset - start + length, got)]
        except OSError as exc:
            raise SourceUnreadable(path=self.path, detail=f"{exc.strerror} at byte {offset}") from None

    def is_hole(self, index: int) -> bool:
        """True when chunk index of an image file lies wholly in a hole (reads as zeros, need not
        be read at all); always False for devices. Uses SEEK_DATA, so it costs no data I/O."""
        if self.is_device:
            return False
        offset = index * self.chunk_size
        try:
            data_at = os.lseek(self.fd, offset, os.SEEK_DATA)
        except OSError as exc:
            # ENXIO: no data from offset to the end of the file; anything else (SEEK_DATA not
            # supported here): read everything
            return exc.errno == errno.ENXIO
        return data_at >= min(offset + self.chunk_size, self.info.size)

    def read(self, index: int) -> bytes | bytearray:
        """The chunk at index (the last one may be short), in this thread's own buffer: it is
        valid until this thread's next read. An I/O error names the offset."""
        offset = index * self.chunk_size
        length = min(self.chunk_size, self.info.size - offset)
        buf: mmap.mmap | bytearray | None = getattr(self._local, "buf", None)
        if buf is None:
            # page-aligned for O_DIRECT; a bytearray compares with bytes at memcmp speed
            buf = self._local.buf = mmap.mmap(-1, self.chunk_size) if self.direct else bytearray(self.chunk_size)
        try:
            got = os.preadv(self.fd, [buf], offset)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise SourceUnreadable(path=self.path, detail=f"{exc.strerror} at byte {offset}") from None
            got = -1
        if got < length:  # an error, or a read cut short by one: sector by sector
            self._around(buf, offset, length)
        if isinstance(buf, mmap.mmap) or length < self.chunk_size:
            return buf[:length]  # a copy: out of the mmap (no fast compare), or the short last chunk
        return buf

    def _around(self, buf: mmap.mmap | bytearray, offset: int, length: int) -> None:
        """Read [offset, offset+length) into buf sector by sector, to find (or, with rescue, read
        around) what fails."""
        view = memoryview(buf)
        for at in range(0, length, SECTOR):
            n = min(SECTOR, length - at)
            if self._sector(view[at : at + n], offset + at) == n:
                continue
            if not self.rescue:
                raise SourceUnreadable(path=self.path, detail=self._failure(offset + at, n))
            for sub in range(0, n, 512):  # the sector's 512-byte parts: some may read
                part = view[at + sub : at + min(sub + 512, n)]
                if self.direct or self._sector(part, offset + at + sub) != len(part):
                    part[:] = bytes(len(part))
                    self._lose(offset + at + sub, offset + at + sub + len(part))

    def _sector(self, into: memoryview, offset: int) -> int:
        """Bytes read into ``into`` from offset; -1 on an I/O error."""
        try:
            return os.preadv(self.fd, [into], offset)
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EINVAL):
                return -1
            raise SourceUnreadable(path=self.path, detail=f"{exc.strerror} at byte {offset}") from None

    def _failure(self, offset: int, n: int) -> str:
        """Why the n bytes at offset did not read: an unreadable sector, or the source ended."""
        if size_of(self.fd, self.is_device) < offset + n:
            return f"short read at byte {offset}: the source shrank while it was read"
        return f"I/O error at byte {offset} (unreadable sector; `backup --rescue` reads around such sectors)"

    def _lose(self, lo: int, hi: int) -> None:
        with self._lost_lock:
            self.lost_bytes += hi - lo
            if self.lost and self.lost[-1][1] == lo:
                self.lost[-1] = (self.lost[-1][0], hi)
            elif len(self.lost) < MAX_LOST_RANGES:
                self.lost.append((lo, hi))

    def close(self) -> None:
        os.close(self.fd)
