"""ext2/3/4 used blocks, from the block bitmaps (read one group at a time).

Handles 1-64 KiB blocks, 64-bit descriptors, flex_bg (bitmaps anywhere) and groups whose bitmap
was never initialised (BLOCK_UNINIT: only the group's leading metadata is in use, as the free
count in its descriptor says). meta_bg layouts are not parsed: such a filesystem is imaged whole.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from liferaft.disk import DiskFormatError, ReadAt, need
from liferaft.disk.fsmap import FsInfo, merged, runs

MAGIC = 0xEF53
INCOMPAT_META_BG = 0x10
INCOMPAT_EXTENTS = 0x40
INCOMPAT_64BIT = 0x80
INCOMPAT_FLEX_BG = 0x200
COMPAT_JOURNAL = 0x4
RO_GDT_CSUM = 0x10
RO_METADATA_CSUM = 0x400
BG_BLOCK_UNINIT = 0x2


@dataclass(frozen=True, slots=True)
class _Group:
    first: int
    count: int
    bitmap: int
    uninit: bool
    free: int


class ExtMap:
    def __init__(self, read_at: ReadAt, info: FsInfo, first_data_block: int, groups: list[_Group]) -> None:
        self._read_at, self.info = read_at, info
        self._first_data_block = first_data_block
        self._groups = groups

    def free_extents(self) -> Iterator[tuple[int, int]]:
        return merged(self._free())

    def _free(self) -> Iterator[tuple[int, int]]:
        bs = self.info.block_size
        for g in self._groups:
            if g.uninit:
                used = g.count - g.free
                if used < g.count:
                    yield (g.first + used) * bs, (g.count - used) * bs
                continue
            bits = self._read_at(g.bitmap * bs, bs)
            need(len(bits) == bs, "ext: short block bitmap")
            yield from runs(bits, g.count, bs, g.first * bs)


def probe(read_at: ReadAt, size: int) -> ExtMap | None:
    sb = read_at(1024, 1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != MAGIC:
        return None
    (log_bs,) = struct.unpack_from("<I", sb, 0x18)
    need(log_bs <= 6, "ext: bad block size")
    bs = 1024 << log_bs
    (blocks_lo,) = struct.unpack_from("<I", sb, 0x4)
    (first_data_block,) = struct.unpack_from("<I", sb, 0x14)
    (bpg,) = struct.unpack_from("<I", sb, 0x20)
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    is64 = bool(incompat & INCOMPAT_64BIT)
    blocks = blocks_lo | (struct.unpack_from("<I", sb, 0x150)[0] << 32 if is64 else 0)
    desc_size = struct.unpack_from("<H", sb, 0xFE)[0] if is64 else 32
    need(bpg > 0 and bpg <= 8 * bs and blocks > first_data_block, "ext: bad geometry")
    need(blocks * bs <= size, "ext: filesystem larger than its partition")
    need(desc_size >= 32 and desc_size & (desc_size - 1) == 0 and desc_size <= 1024, "ext: bad descriptor size")
    if incompat & INCOMPAT_META_BG:
        raise DiskFormatError("ext: meta_bg layouts are not parsed")
    if incompat & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG):
        kind = "ext4"
    else:
        kind = "ext3" if compat & COMPAT_JOURNAL else "ext2"
    csum = bool(ro_compat & (RO_GDT_CSUM | RO_METADATA_CSUM))
    ngroups = -(-(blocks - first_data_block) // bpg)
    gdt = read_at((first_data_block + 1) * bs, ngroups * desc_size)
    need(len(gdt) == ngroups * desc_size, "ext: short group descriptor table")
    groups = []
    for g in range(ngroups):
        d = gdt[g * desc_size : (g + 1) * desc_size]
        bitmap = struct.unpack_from("<I", d, 0)[0] | (struct.unpack_from("<I", d, 0x20)[0] << 32 if desc_size >= 64 else 0)
        free = struct.unpack_from("<H", d, 0xC)[0] | (struct.unpack_from("<H", d, 0x2C)[0] << 16 if desc_size >= 64 else 0)
        (flags,) = struct.unpack_from("<H", d, 0x12)
        first = first_data_block + g * bpg
        count = min(bpg, blocks - first)
        uninit = csum and bool(flags & BG_BLOCK_UNINIT)
        need(uninit or 0 < bitmap < blocks, "ext: block bitmap outside the filesystem")
        need(free <= count, "ext: more free blocks than the group holds")
        groups.append(_Group(first, count, bitmap, uninit, free))
    label = sb[0x78:0x88].split(b"\0", 1)[0].decode("utf-8", "replace")
    info = FsInfo(kind, label, str(uuid.UUID(bytes=sb[0x68:0x78])), bs, blocks * bs)
    return ExtMap(read_at, info, first_data_block, groups)
