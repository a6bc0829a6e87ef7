"""Tracing the writes to a block device, with a tracefs instance of liferaft's own (no kernel
module), filtered in the kernel to the device and to writes and discards.

On a request-based disk (blk-mq: SATA, NVMe, virtio, loop) every write ends with a
``block_rq_complete`` event, which is traced: a write is seen once it has landed, so a reader that
raced with a slow write learns of it after the write is on the disk. A bio-based disk (device
mapper, md) has no such event; there ``block_bio_queue`` is traced as well, and callers must not
assume that a seen write has landed (``completions`` is False).

The kernel reports partition I/O against the whole disk with disk-absolute sectors, so the filter
names the disk and a partition's start (from sysfs) is subtracted here. Events are drained from
``trace_pipe`` without blocking. A ring-buffer overrun (per-CPU ``stats``) means events were lost:
``overruns()`` reports it, and the caller must then treat everything as written.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

from liferaft.errors import SourceUnreadable
from liferaft.source.options import BUFFER_KB

TRACEFS = Path("/sys/kernel/tracing")
QUEUED, COMPLETED = "events/block/block_bio_queue", "events/block/block_rq_complete"
EVENTS = (QUEUED, COMPLETED)
_LINE = re.compile(rb"block_(?:bio_queue|rq_complete): (\d+),(\d+) (\S+) (?:\([^)]*\) )?(\d+) \+ (\d+)")


def _mount_tracefs() -> Path:
    if not (TRACEFS / "instances").is_dir():
        TRACEFS.mkdir(parents=True, exist_ok=True)
        run = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True, text=True)
        if run.returncode != 0 or not (TRACEFS / "instances").is_dir():
            raise SourceUnreadable(path=str(TRACEFS), detail=f"cannot mount tracefs: {run.stderr.strip()}")
    return TRACEFS


def _disk_of(dev: str) -> tuple[int, int, int, int, bool]:
    """(major, minor) of the whole disk holding block device dev, dev's first sector on it,
    dev's size in sectors, and whether the disk is request-based (blk-mq: every write ends with
    a block_rq_complete event)."""
    st = os.stat(dev)
    if not stat.S_ISBLK(st.st_mode):
        raise SourceUnreadable(path=dev, detail="not a block device: only devices can be traced")
    sys_dev = Path(f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}").resolve()
    sectors = int((sys_dev / "size").read_text())
    start = 0
    if (sys_dev / "partition").exists():
        start = int((sys_dev / "start").read_text())
        sys_dev = sys_dev.parent
    major, minor = (int(x) for x in (sys_dev / "dev").read_text().split(":"))
    return major, minor, start, sectors, (sys_dev / "mq").is_dir()


def remove_stale(root: Path) -> None:
    """Remove the instances of liferaft processes that died without removing theirs (kill -9):
    a leaked instance keeps tracing and holds its ring buffer."""
    for inst in (root / "instances").glob("liferaft-*-*"):
        pid = inst.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            try:
                (inst / "tracing_on").write_text("0")
                for event in EVENTS:
                    (inst / event / "enable").write_text("0")
                inst.rmdir()
            except OSError:
                pass


class BlockTrace:
    """Writes to one device, as (first byte, length) ranges relative to that device."""

    def __init__(self, dev: str, buffer_kb: int = BUFFER_KB) -> None:
        self.dev = dev
        # completions: every write is seen once it has landed (request-based disks)
        major, minor, self._start, self._sectors, self.completions = _disk_of(dev)
        self._dev = (str(major).encode(), str(minor).encode())
        root = _mount_tracefs()
        remove_stale(root)
        self.instance = root / "instances" / f"liferaft-{os.getpid()}-{os.urandom(3).hex()}"
        try:
            self.instance.mkdir()  # tracefs creates a whole tracing instance
        except OSError as exc:
            raise SourceUnreadable(path=dev, detail=f"cannot trace its writes ({exc.strerror}): live backups need root") from None
        try:
            (self.instance / "buffer_size_kb").write_text(str(buffer_kb))
            kernel_dev = major << 20 | minor  # the kernel's dev_t layout in this event
            for event in (COMPLETED,) if self.completions else EVENTS:
                (self.instance / event / "filter").write_text(f'dev == {kernel_dev} && (rwbs ~ "*W*" || rwbs ~ "*D*")')
                (self.instance / event / "enable").write_text("1")
            (self.instance / "tracing_on").write_text("1")
            self._pipe = os.open(self.instance / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except BaseException:
            self.close()
            raise
        self._rest = b""

    def drain(self) -> Iterator[tuple[int, int]]:
        """The writes traced since the last drain, as (offset, length) in bytes on self.dev;
        writes to other partitions of the same disk are left out."""
        while True:
            try:
                data = os.read(self._pipe, 1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                raise
            if not data:
                break
            lines = (self._rest + data).split(b"\n")
            self._rest = lines.pop()
            for line in lines:
                m = _LINE.search(line)
                if not m or m.group(1, 2) != self._dev or not (b"W" in m.group(3) or b"D" in m.group(3)):
                    continue  # the kernel filter may lag behind enabling the event
                first = max(int(m.group(4)) - self._start, 0)
                end = min(int(m.group(4)) + int(m.group(5)) - self._start, self._sectors)
                if first < end:
                    yield first * 512, (end - first) * 512

    def overruns(self) -> int:
        """Events lost to a full ring buffer since the instance was made (all CPUs)."""
        lost = 0
        for stats in (self.instance / "per_cpu").glob("cpu*/stats"):
            m = re.search(r"^overrun: (\d+)", stats.read_text(), re.M)
            lost += int(m.group(1)) if m else 0
        return lost

    def close(self) -> None:
        """Stop and remove the instance (always; a leaked instance keeps tracing)."""
        if getattr(self, "_pipe", -1) >= 0:
            os.close(self._pipe)
            self._pipe = -1
        try:
            (self.instance / "tracing_on").write_text("0")
            for event in EVENTS:
                (self.instance / event / "enable").write_text("0")
        except OSError:
            pass
        try:
            self.instance.rmdir()
        except OSError:
            pass
