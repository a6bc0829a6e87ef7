"""Freezing filesystems (FIFREEZE / FITHAW) under a watchdog that always thaws.

The watchdog is a separate process, started and fully loaded before anything is frozen: a
standard-library script run with ``python -I -S -B`` that imports nothing afterwards, so it never
writes to a frozen filesystem. It thaws every filesystem when the window exceeds its bound, or at
once when its parent dies (even by kill -9: its stdin reaches end of file). The freeze window,
from the first FIFREEZE to the last FITHAW, is measured here, which is what applications feel.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from liferaft.errors import FreezeBusy, FreezeExpired, FreezeFailed
from liferaft.source.linux import watchdog
from liferaft.source.linux.watchdog import FITHAW, thaw
from liferaft.source.options import MAX_FREEZE_S

__all__ = ["FIFREEZE", "FITHAW", "Window", "frozen", "thaw"]

FIFREEZE = 0xC0045877
WATCHDOG = watchdog.__file__
BUSY_SLACK_S = 5.0
"""How much longer than its own bound a freeze waits for a filesystem frozen by someone else."""
BUSY_POLL_S = 0.1


@dataclass
class Window:
    started: float = 0.0
    wall: float = 0.0
    """time.time() at the first FIFREEZE: the instant the image stands for."""
    seconds: float = 0.0
    """First FIFREEZE to last FITHAW."""
    unsupported: list[str] = field(default_factory=list)
    """Mountpoints whose filesystem cannot be frozen (FUSE, FAT, ...), when those are allowed."""


@contextmanager
def frozen(mountpoints: list[str], max_freeze: float = MAX_FREEZE_S, allow_unsupported: bool = False) -> Iterator[Window]:
    """Freeze mountpoints together for the body of the with-block; the body must not write to
    them. Raises FreezeFailed (nothing frozen) or, on exit, FreezeExpired if the watchdog had to
    thaw. With allow_unsupported, a filesystem that has no freeze at all is left running and
    listed in the window's ``unsupported``.

    A filesystem that another program holds frozen (FIFREEZE gives EBUSY: another backup of the
    same filesystem, say) is waited for, with nothing of ours frozen meanwhile: up to max_freeze
    + BUSY_SLACK_S (another liferaft thaws within its own bound), then FreezeBusy."""
    deadline = time.monotonic() + max_freeze + BUSY_SLACK_S
    with ExitStack() as stack:
        while True:
            try:
                window = stack.enter_context(_frozen_once(mountpoints, max_freeze, allow_unsupported))
                break
            except _Busy as busy:
                if time.monotonic() >= deadline:
                    waited = round(max_freeze + BUSY_SLACK_S)
                    raise FreezeBusy(mountpoint=busy.mountpoint, waited=waited) from None
                time.sleep(BUSY_POLL_S)
        yield window


class _Busy(Exception):
    def __init__(self, mountpoint: str) -> None:
        self.mountpoint = mountpoint


@contextmanager
def _frozen_once(mountpoints: list[str], max_freeze: float, allow_unsupported: bool) -> Iterator[Window]:
    """One attempt of ``frozen``; raises _Busy (after thawing what it froze) on EBUSY."""
    dog = subprocess.Popen(
        [sys.executable, "-I", "-S", "-B", WATCHDOG, str(max_freeze), *mountpoints],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert dog.stdin is not None and dog.stdout is not None
    if dog.stdout.readline() != b"ready\n":
        dog.kill()
        dog.wait()
        raise FreezeFailed("anything: the freeze watchdog did not start")
    window = Window()
    fds: list[int] = []
    dog.stdin.write(b"start\n")
    dog.stdin.flush()
    window.started, window.wall = time.monotonic(), time.time()
    try:
        for mp in mountpoints:
            fd = os.open(mp, os.O_RDONLY | os.O_CLOEXEC)
            fds.append(fd)
            try:
                fcntl.ioctl(fd, FIFREEZE, 0)
            except OSError as exc:
                fds.pop()
                os.close(fd)
                if allow_unsupported and exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY):
                    window.unsupported.append(mp)
                    continue
                if exc.errno == errno.EBUSY:
                    raise _Busy(mp) from None
                raise FreezeFailed(f"{mp} ({exc.strerror})") from None
        yield window
    finally:
        for fd in reversed(fds):
            try:
                fcntl.ioctl(fd, FITHAW, 0)
            except OSError:
                pass  # already thawed (by the watchdog)
            os.close(fd)
        window.seconds = time.monotonic() - window.started
        try:
            dog.stdin.write(b"thawed\n")
            dog.stdin.close()
        except BrokenPipeError:
            pass
        expired = dog.wait() == 1
    if expired:
        raise FreezeExpired(bound=max_freeze)
