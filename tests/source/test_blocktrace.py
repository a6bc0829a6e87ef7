"""Tracing writes on real loop devices with a tracefs instance of our own."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from liferaft.source.linux.blocktrace import BlockTrace
from tests.conftest import sh


def dd_write(dev: str, block: int, seek: int, count: int = 1) -> None:
    sh("dd", "if=/dev/urandom", f"of={dev}", f"bs={block}", f"count={count}", f"seek={seek}", "oflag=direct", "conv=notrunc")


def traced(t: BlockTrace) -> set[tuple[int, int]]:
    time.sleep(0.2)  # let the events reach the ring buffer
    return set(t.drain())


def test_writes_to_a_disk_are_traced_and_reads_are_not(tmp_path: Path, loopdev: Callable[..., str]) -> None:
    img = tmp_path / "d.img"
    sh("truncate", "-s", "32M", str(img))
    dev = loopdev(img)
    t = BlockTrace(dev)
    try:
        assert t.instance.is_dir()
        dd_write(dev, 4096, 10)
        dd_write(dev, 65536, 100)
        sh("dd", f"if={dev}", "of=/dev/null", "bs=1M", "count=4", "iflag=direct")
        got = traced(t)
        assert got == {(40960, 4096), (100 * 65536, 65536)}
        assert traced(t) == set()  # drained
        assert t.overruns() == 0
    finally:
        t.close()
    assert not t.instance.exists()  # the instance is removed


def test_a_partition_is_traced_relative_to_itself(tmp_path: Path, loopdev: Callable[..., str]) -> None:
    img = tmp_path / "p.img"
    sh("truncate", "-s", "64M", str(img))
    subprocess.run(["sfdisk", "-q", str(img)], input="label: gpt\nsize=20MiB\nsize=20MiB\n", text=True, check=True)
    disk = loopdev(img, partscan=True)
    p2 = f"{disk}p2"
    for _ in range(50):
        if os.path.exists(p2):
            break
        time.sleep(0.05)
    t = BlockTrace(p2)
    try:
        dd_write(p2, 4096, 7)
        dd_write(f"{disk}p1", 4096, 3)  # another partition of the same disk: not ours
        assert traced(t) == {(7 * 4096, 4096)}
    finally:
        t.close()


def test_a_full_ring_buffer_is_reported(tmp_path: Path, loopdev: Callable[..., str]) -> None:
    img = tmp_path / "o.img"
    sh("truncate", "-s", "64M", str(img))
    dev = loopdev(img)
    t = BlockTrace(dev, buffer_kb=4)  # room for a few dozen events per CPU
    try:
        dd_write(dev, 4096, 0, count=4000)  # thousands of writes, none drained meanwhile
        time.sleep(0.2)
        assert t.overruns() > 0
    finally:
        t.close()


def test_ring_buffer_pages_are_walked_whole_across_record_kinds(tmp_path: Path, loopdev: Callable[..., str]) -> None:
    """Thousands of writes, each followed by a marker of another size: short records, long ones
    (over 112 bytes: their length in a word of their own), so pages fill and end in padding at
    every offset. Every block written is traced, and nothing else."""
    import mmap
    import random

    img = tmp_path / "r.img"
    sh("truncate", "-s", "64M", str(img))
    dev = loopdev(img)
    t = BlockTrace(dev)
    rng = random.Random(5)
    buf = mmap.mmap(-1, 1 << 20)  # page-aligned, for O_DIRECT
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    marker = os.open(t.instance / "trace_marker", os.O_WRONLY)
    written: set[int] = set()
    try:
        for _ in range(3000):
            n = rng.choice([1, 2, 8, 64, 256])
            block = rng.randrange(0, 16384 - n)
            os.pwrite(fd, memoryview(buf)[: n * 4096], block * 4096)
            written.update(range(block, block + n))
            os.write(marker, b"m" * rng.choice([1, 50, 100, 113, 200, 900]))
        got = {b for off, length in traced(t) for b in range(off // 4096, (off + length) // 4096)}
        assert t.overruns() == 0
        assert got == written
    finally:
        os.close(marker)
        os.close(fd)
        t.close()
