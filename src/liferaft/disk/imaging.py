"""What to image of a source: its layout, the filesystem in each partition, and the free byte
ranges that need neither reading nor storing, cut per chunk.

Everything outside the partitions (boot code, gaps, partition tables), every partition without a
recognised filesystem, and any part a parser cannot vouch for is imaged whole. A parser that fails
midway stops contributing free ranges from that point on (the rest counts as used) and leaves a
note; it never fails the backup.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from liferaft.disk import DiskFormatError, ReadAt
from liferaft.disk.fsmap import FsMap, detect_noted
from liferaft.disk.layout import Layout, Partition, data_partitions, read_layout


@dataclass(eq=False)
class Region:
    """One partition (or the whole source, for a bare filesystem) and what is known of it."""

    partition: Partition
    fs: FsMap | None
    note: str = ""
    free_bytes: int = 0
    """Free bytes yielded so far (complete once the backup has consumed every chunk)."""
    settled: bool = False
    """The maps on disk are current (a live backup's settling freeze): see FsMap.free_extents."""

    @property
    def recovery(self) -> str:
        """Why the filesystem needs recovery, when the image of it is crash-consistent."""
        return self.fs.recovery if self.fs is not None and not self.settled else ""

    @property
    def used_bytes(self) -> int:
        return self.partition.size - self.free_bytes

    def free_extents(self) -> Iterator[tuple[int, int]]:
        """Absolute free ranges; stops (the rest counts as used) if the map turns out bad."""
        if self.fs is None:
            return
        base, limit = self.partition.start, min(self.fs.info.size, self.partition.size)
        try:
            for offset, length in self.fs.free_extents(self.settled):
                if offset < 0 or offset + length > limit:
                    raise DiskFormatError("free range outside the filesystem")
                self.free_bytes += length
                yield base + offset, length
        except (DiskFormatError, ValueError, IndexError) as exc:
            self.note = f"used-block map unreadable from here on ({exc}); the rest is imaged whole"
        if self.fs.note:
            self.note = self.fs.note


@dataclass(eq=False)
class Plan:
    layout: Layout
    regions: list[Region] = field(default_factory=list)

    def free_extents(self) -> Iterator[tuple[int, int]]:
        return heapq.merge(*(r.free_extents() for r in self.regions))

    @property
    def needs_recovery(self) -> list[Region]:
        """The regions whose filesystems need recovery (the image is crash-consistent there)."""
        return [r for r in self.regions if r.recovery]


def make_plan(read_at: ReadAt, size: int, all_blocks: bool = False, settled: bool = False) -> Plan:
    """settled: the source's filesystems were frozen after tracing began (a live backup), so
    their maps on disk are current; otherwise journals and dirty flags are heeded."""
    layout = read_layout(read_at, size)
    parts = data_partitions(layout)
    if layout.table == "none":  # a partition or bare filesystem: it is the one region
        parts = [Partition(0, 0, size, "")]
    plan = Plan(layout)
    for p in parts:
        fs = None
        note = ""
        if not all_blocks:
            fs, why = detect_noted(_within(read_at, p), p.size)
            if fs is None and why:
                note = f"filesystem metadata does not parse ({why}): imaged whole"
            elif fs is None and layout.table != "none":
                note = "no known filesystem: imaged whole"
        plan.regions.append(Region(p, fs, note, settled=settled))
    return plan


def _within(read_at: ReadAt, p: Partition) -> ReadAt:
    def read(offset: int, length: int) -> bytes:
        if offset < 0 or offset >= p.size:
            return b""
        return read_at(p.start + offset, min(length, p.size - offset))

    return read


Pieces = tuple[tuple[int, int], ...]


def chunk_free(extents: Iterator[tuple[int, int]], chunk_size: int, size: int) -> Iterator[tuple[int, Pieces]]:
    """For every chunk in order: (index, free (offset in chunk, length) pieces)."""
    pending: tuple[int, int] | None = next(extents, None)
    for i in range(-(-size // chunk_size)):
        lo, hi = i * chunk_size, min((i + 1) * chunk_size, size)
        pieces = []
        while pending is not None and pending[0] < hi:
            start, length = pending
            end = start + length
            a, b = max(start, lo), min(end, hi)
            if a < b:
                pieces.append((a - lo, b - a))
            if end <= hi:
                pending = next(extents, None)
            else:
                break
        yield i, tuple(pieces)
