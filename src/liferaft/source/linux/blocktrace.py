"""Tracing the writes to a block device, with a tracefs instance of liferaft's own (no kernel
module), filtered in the kernel to the device and to writes and discards.

On a request-based disk (blk-mq: SATA, NVMe, virtio, loop) every write ends with a
``block_rq_complete`` event, which is traced: a write is seen once it has landed, so a reader that
raced with a slow write learns of it after the write is on the disk. A bio-based disk (device
mapper, md) has no such event; there ``block_bio_queue`` is traced as well, and callers must not
assume that a seen write has landed (``completions`` is False).

The kernel reports partition I/O against the whole disk with disk-absolute sectors, so the filter
names the disk and a partition's start (from sysfs) is subtracted here. Events are drained
without blocking from each CPU's ``trace_pipe_raw``, as the ring buffer's own pages: no text is
formatted by the kernel or parsed here, which keeps a tracker that runs all day under a busy
writer near idle (the layouts come from tracefs: ``events/header_page``, each event's ``format``).
A ring-buffer overrun (per-CPU ``stats``) means events were lost: ``overruns()`` reports it, and
the caller must then treat everything as written.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from liferaft.errors import SourceUnreadable
from liferaft.source.options import BUFFER_KB

TRACEFS = Path("/sys/kernel/tracing")
QUEUED, COMPLETED = "events/block/block_bio_queue", "events/block/block_rq_complete"
EVENTS = (QUEUED, COMPLETED)
_FIELD = re.compile(r"field:\s*([^;]*?)\s*;\s*offset:(\d+);\s*size:(\d+);")
_PADDING, _TIME_EXTEND, _TIME_STAMP = 29, 30, 31  # ring-buffer record types; 1..28: data, 4 bytes a unit


def _fields(text: str) -> dict[str, tuple[int, int]]:
    """name -> (offset, size), from a tracefs format file."""
    return {decl.split()[-1].split("[")[0]: (int(off), int(size)) for decl, off, size in _FIELD.findall(text)}


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where an event's fields lie in its record: dev, sector and nr_sector as 32-bit word
    indexes (sector takes two); the record's size in bytes."""

    dev: int
    sector: int
    count: int
    size: int


def _layout(root: Path, event: str) -> tuple[int, _Layout]:
    """An event's id and its record's layout, from its format file."""
    fmt = root / event / "format"
    fields = _fields(fmt.read_text())
    try:
        (dev, _), (sector, _), (count, _) = (fields[k] for k in ("dev", "sector", "nr_sector"))
    except KeyError as exc:
        raise SourceUnreadable(path=str(fmt), detail=f"this kernel's {event} has no field {exc}") from None
    if dev % 4 or sector % 4 or count % 4:
        raise SourceUnreadable(path=str(fmt), detail=f"this kernel's {event} record has fields off 4-byte bounds")
    size = max(off + n for off, n in fields.values())
    return int((root / event / "id").read_text()), _Layout(dev // 4, sector // 4, count // 4, size)


def _page_layout(root: Path) -> tuple[int, int]:
    """(word index of the commit count, word index of the data) in a ring-buffer page."""
    fields = _fields((root / "events" / "header_page").read_text())
    return fields["commit"][0] // 4, fields["data"][0] // 4


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
        self._kernel_dev = major << 20 | minor  # the kernel's dev_t layout in these events
        if sys.byteorder != "little":
            raise SourceUnreadable(path=dev, detail="the write trace is read on little-endian machines only")
        root = _mount_tracefs()
        remove_stale(root)
        self.instance = root / "instances" / f"liferaft-{os.getpid()}-{os.urandom(3).hex()}"
        self._pipes: list[int] = []
        try:
            self.instance.mkdir()  # tracefs creates a whole tracing instance
        except OSError as exc:
            raise SourceUnreadable(path=dev, detail=f"cannot trace its writes ({exc.strerror}): live backups need root") from None
        try:
            (self.instance / "buffer_size_kb").write_text(str(buffer_kb))
            events = (COMPLETED,) if self.completions else EVENTS
            layouts = dict(_layout(root, event) for event in events)
            self._layout = next(iter(layouts.values()))
            if any((lay.dev, lay.sector, lay.count) != (self._layout.dev, self._layout.sector, self._layout.count)
                   for lay in layouts.values()):  # fmt: skip
                raise SourceUnreadable(path=dev, detail="this kernel's block events place dev, sector and nr_sector apart")
            self._sizes = {event_id: lay.size for event_id, lay in layouts.items()}
            self._commit_at, self._data_at = _page_layout(root)
            for event in events:
                (self.instance / event / "filter").write_text(f'dev == {self._kernel_dev} && (rwbs ~ "*W*" || rwbs ~ "*D*")')
                (self.instance / event / "enable").write_text("1")
            (self.instance / "tracing_on").write_text("1")
            for raw in sorted((self.instance / "per_cpu").glob("cpu*/trace_pipe_raw")):  # every possible CPU
                self._pipes.append(os.open(raw, os.O_RDONLY | os.O_NONBLOCK))
        except BaseException:
            self.close()
            raise

    def _pages(self) -> Iterator[bytes]:
        for fd in self._pipes:
            while True:
                try:
                    page = os.read(fd, 1 << 16)  # one ring-buffer page a read
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EINTR):
                        break
                    raise
                if not page:
                    break
                yield page

    def drain(self) -> Iterator[tuple[int, int]]:
        """The writes traced since the last drain, as (offset, length) in bytes on self.dev;
        writes to other partitions of the same disk are left out.

        Each page is read as 32-bit words. A record starts with a word: its type in the low 5
        bits (1..28: that many words of data follow; 0: the next word holds the length in bytes,
        itself included; 29 padding, 30 and 31 time stamps), the time delta above them. One
        loop, no function of ours called per record: a tracker drains thousands a second all day.
        (Little-endian words: the sector's low half first, the commit count's low half first.)"""
        sizes, dev, start, sectors = self._sizes, self._kernel_dev, self._start, self._sectors
        at_dev, at_sector, at_count = self._layout.dev, self._layout.sector, self._layout.count
        for page in self._pages():
            words = memoryview(page)[: len(page) // 4 * 4].cast("I")
            pos = self._data_at
            end = min(pos + (words[self._commit_at] & 0x3FFFFFFF) // 4, len(words))  # less the missed-events flags
            while pos < end:
                head = words[pos]
                kind = head & 31
                if 0 < kind < _PADDING:
                    at, pos = pos + 1, pos + 1 + kind
                elif kind == 0:
                    at, pos = pos + 2, pos + 1 + words[pos + 1] // 4
                elif kind == _PADDING:
                    if head >> 5 == 0:
                        break  # the rest of the page is padding
                    pos += 1 + words[pos + 1] // 4
                    continue
                else:  # a time extend or an absolute time stamp: two words
                    pos += 2
                    continue
                size = sizes.get(words[at] & 0xFFFF)  # by common_type
                if size is None or 4 * at + size > len(page) or words[at + at_dev] != dev:
                    continue  # a marker; (the kernel filter passes this device's writes and discards only)
                sector = words[at + at_sector] | words[at + at_sector + 1] << 32
                first, last = max(sector - start, 0), min(sector + words[at + at_count] - start, sectors)
                if first < last:
                    yield first * 512, (last - first) * 512

    def overruns(self) -> int:
        """Events lost to a full ring buffer since the instance was made (all CPUs)."""
        lost = 0
        for stats in (self.instance / "per_cpu").glob("cpu*/stats"):
            m = re.search(r"^overrun: (\d+)", stats.read_text(), re.M)
            lost += int(m.group(1)) if m else 0
        return lost

    def close(self) -> None:
        """Stop and remove the instance (always; a leaked instance keeps tracing)."""
        for fd in self._pipes:
            os.close(fd)
        self._pipes.clear()
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
