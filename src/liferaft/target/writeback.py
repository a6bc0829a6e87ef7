"""Write-behind for a restore target: its data goes through the page cache, writeback of each
range starts as soon as it is written (sync_file_range), and once more than ``window`` bytes are
in flight the oldest range is waited for and dropped from the cache.

So the disk is kept busy while the workers decrypt and decompress, the kernel allocates a file's
blocks in large extents and merges adjacent writes into large I/Os, and a restore of any size
holds at most ``window`` bytes of the target in memory. Measured on this project's development
machine, 1.6 GiB of 1 MiB chunks into a sparse ext4 file, until durable: 2.7-3.3 s this way,
3.7-5.3 s with O_DIRECT writes (each of which allocates blocks and converts extents on its own).

A failure that writeback reports here is raised: the kernel reports it once per open file, so
ignoring it would let the final fsync succeed over lost data."""

from __future__ import annotations

import errno
import os
import threading
from collections import deque

from liferaft.source.linux import kernel

WAIT_BEFORE, WRITE, WAIT_AFTER = 1, 2, 4
UNSUPPORTED = (errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP)
WINDOW = 64 * 1024 * 1024


class WritebackFailed(OSError):
    """The writeback of a range failed; offset: where that range starts."""

    def __init__(self, err: int, offset: int) -> None:
        super().__init__(err, os.strerror(err))
        self.offset = offset


class WriteBehind:
    def __init__(self, fd: int, window: int = WINDOW) -> None:
        self._fd, self._window = fd, window
        self._on = True  # off at the first range the file does not support
        self._lock = threading.Lock()
        self._ranges: deque[tuple[int, int]] = deque()
        self._pending = 0

    def written(self, offset: int, length: int) -> None:
        """offset..offset+length was just written: start its writeback, and wait for (and drop)
        the oldest ranges while more than the window is in flight. Raises WritebackFailed when
        the writeback of a range failed (EIO, ENOSPC), that range or an older one."""
        if not self._on or not self._range(offset, length, WRITE):
            return
        done: list[tuple[int, int]] = []
        with self._lock:
            self._ranges.append((offset, length))
            self._pending += length
            while self._pending > self._window:
                done.append(self._ranges.popleft())
                self._pending -= done[-1][1]
        for at, n in done:
            self._range(at, n, WAIT_BEFORE | WRITE | WAIT_AFTER)
            os.posix_fadvise(self._fd, at, n, os.POSIX_FADV_DONTNEED)

    def drop(self) -> None:
        """Drop the target's cached pages (call after fsync): a read that follows (restore
        --verify) reads the medium, not what the cache still holds."""
        with self._lock:
            self._ranges.clear()
            self._pending = 0
        os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def _range(self, offset: int, length: int, flags: int) -> bool:
        """sync_file_range; False (and off from now on) where the file does not support it."""
        try:
            kernel.sync_file_range(self._fd, offset, length, flags)
            return True
        except OSError as exc:
            if exc.errno in UNSUPPORTED:
                self._on = False
                return False
            raise WritebackFailed(exc.errno or errno.EIO, offset) from None
