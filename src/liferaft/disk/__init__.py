"""What is on a disk: partition tables (``layout``: MBR with logical partitions, GPT) and, per
filesystem, which bytes hold data (``fsmap``: ext2/3/4, NTFS, FAT12/16/32, swap).

Parsers read through a ``ReadAt`` callable and never trust what they read: malformed input raises
``DiskFormatError`` (or yields nothing), and callers then image the region whole. Nothing here
writes.
"""

from __future__ import annotations

from collections.abc import Callable

ReadAt = Callable[[int, int], bytes]
"""read_at(offset, length) -> exactly length bytes (fewer only at the end of the source)."""


class DiskFormatError(ValueError):
    """Bytes that do not parse as the partition table or filesystem they claim to be."""


def need(condition: bool, what: str) -> None:
    if not condition:
        raise DiskFormatError(what)
