"""Write-behind of restore targets on real files and devices: at most its window of a target
stays in the page cache, a failed writeback is raised where it happens (not lost before the
final fsync), and a descriptor without sync_file_range (a pipe) just goes without."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.target.writeback import WritebackFailed, WriteBehind
from tests.conftest import mounted_ext4, sh

MiB = 1 << 20


def cached(path: Path | str) -> int:
    """Bytes of path in the page cache."""
    return int(sh("fincore", "-b", "-n", "-o", "RES", str(path)))


@pytest.fixture
def ext4(tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path]) -> Path:
    return mounted_ext4(tmp_path, loopdev, mount, "128M")


def test_at_most_the_window_stays_cached(ext4: Path) -> None:
    target = ext4 / "target.img"
    data = os.urandom(MiB)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        behind = WriteBehind(fd, window=8 * MiB)
        most = 0
        for i in range(64):
            os.pwrite(fd, data, i * MiB)
            behind.written(i * MiB, MiB)
            most = max(most, cached(target))
        assert 8 * MiB <= most <= 9 * MiB  # the window, and the range just written
        os.fsync(fd)
        behind.drop()
        assert cached(target) == 0
    finally:
        os.close(fd)
    assert target.read_bytes() == data * 64


def test_a_failed_writeback_is_raised(
    tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path], ext4: Path
) -> None:
    # a device whose writes fail once its backing store is full: a 256 MiB sparse file on a
    # 128 MiB filesystem. Writes land in the page cache; their writeback fails with EIO.
    backing = ext4 / "sparse.img"
    sh("truncate", "-s", "256M", str(backing))
    dev = loopdev(backing)
    fd = os.open(dev, os.O_WRONLY)
    data = os.urandom(MiB)
    try:
        behind = WriteBehind(fd, window=8 * MiB)
        with pytest.raises(WritebackFailed) as failed:
            for i in range(256):
                os.pwrite(fd, data, i * MiB)
                behind.written(i * MiB, MiB)
        assert failed.value.errno in (5, 28)  # EIO, or ENOSPC as the loop device passes it on
        assert 100 <= i < 256 and 64 * MiB <= failed.value.offset < i * MiB  # a range written before
    finally:
        os.close(fd)


def test_a_pipe_goes_without() -> None:
    r, w = os.pipe()
    try:
        behind = WriteBehind(w)
        os.write(w, b"x" * 4096)
        behind.written(0, 4096)  # ESPIPE: write-behind turns itself off, nothing raised
        behind.written(0, 4096)
        assert os.read(r, 8192) == b"x" * 4096
    finally:
        os.close(r)
        os.close(w)
