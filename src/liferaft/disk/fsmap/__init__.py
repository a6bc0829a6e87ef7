"""Used-block maps: which bytes of a filesystem hold data. One small module per filesystem, each
with ``probe(read_at, size) -> FsMap | None``; ``detect`` tries them in turn.

A map yields the filesystem's free extents lazily, in ascending order and merged, so memory does
not grow with the filesystem (ext4 bitmaps are read a group at a time). Anything a parser cannot
vouch for counts as used: that is always safe, only less compact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from liferaft.disk import DiskFormatError, ReadAt


@dataclass(frozen=True, slots=True)
class FsInfo:
    kind: str
    """'ext2', 'ext3', 'ext4', 'ntfs', 'fat12', 'fat16', 'fat32' or 'swap'."""
    label: str
    uuid: str
    block_size: int
    size: int
    """Bytes the filesystem spans; the rest of its partition is imaged whole."""


class FsMap(Protocol):
    info: FsInfo
    recovery: str
    """Why the filesystem needs recovery before use (a journal to replay, an NTFS marked dirty):
    its image is crash-consistent. Empty when it is clean."""
    note: str
    """Set by free_extents when it counted the filesystem (or part of it) as used because it
    cannot vouch for its map."""

    def free_extents(self, settled: bool = False) -> Iterator[tuple[int, int]]:
        """(offset, length) of free byte ranges relative to the filesystem start, ascending,
        non-overlapping, within info.size. Raises DiskFormatError when the metadata is bad.

        settled: the filesystem was frozen after every write to it began to be traced (a live
        backup), so its maps on disk are current for everything not traced: a journal or a
        dirty flag is then no reason to doubt them."""
        ...


_BYTE_RUNS = re.compile(rb"\x00+|\xff+|[\x01-\xfe]", re.DOTALL)


def runs(bits: bytes, count: int, unit: int, base: int) -> Iterator[tuple[int, int]]:
    """Free runs of a little-endian bitmap whose set bits mean used: bits 0..count-1, bit i
    standing for unit bytes at base + i * unit. Whole 0x00 and 0xFF bytes are skipped at C speed
    (a 1 TB ext4 has 256 M bits)."""
    start = -1
    for m in _BYTE_RUNS.finditer(bits, 0, -(-count // 8)):
        first = m.start() * 8
        if first >= count:
            break
        value = m.group()
        if value[0] == 0:  # a run of free bytes
            if start < 0:
                start = first
        elif value[0] == 0xFF:
            if start >= 0:
                yield base + start * unit, (first - start) * unit
                start = -1
        else:
            byte = value[0]
            for b in range(8):
                if first + b >= count:
                    break
                if byte >> b & 1:
                    if start >= 0:
                        yield base + start * unit, (first + b - start) * unit
                        start = -1
                elif start < 0:
                    start = first + b
    if start >= 0:
        yield base + start * unit, (count - start) * unit


def merged(extents: Iterator[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Adjacent extents joined; order and disjointness checked."""
    cur_start, cur_len = -1, 0
    for start, length in extents:
        if length <= 0:
            continue
        if cur_start >= 0 and start < cur_start + cur_len:
            raise DiskFormatError("free extents overlap or go backwards")
        if cur_start >= 0 and start == cur_start + cur_len:
            cur_len += length
            continue
        if cur_start >= 0:
            yield cur_start, cur_len
        cur_start, cur_len = start, length
    if cur_start >= 0:
        yield cur_start, cur_len


def detect(read_at: ReadAt, size: int) -> FsMap | None:
    """The filesystem at the start of read_at's space, or None when none is recognised."""
    return detect_noted(read_at, size)[0]


def detect_noted(read_at: ReadAt, size: int) -> tuple[FsMap | None, str]:
    """The filesystem at the start of read_at's space, or None and, when a filesystem's magic
    was found but its metadata does not parse, why."""
    from liferaft.disk.fsmap import ext, fat, ntfs, swap

    probes: list[Callable[[ReadAt, int], FsMap | None]] = [ext.probe, ntfs.probe, fat.probe, swap.probe]
    why = ""
    for probe in probes:
        try:
            found = probe(read_at, size)
        except (DiskFormatError, ValueError, IndexError) as exc:
            found = None
            why = why or f"{exc}"
        if found is not None:
            return found, ""
    return None, why
