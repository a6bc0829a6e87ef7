"""ext2/3/4 used blocks, from the block bitmaps (read one group at a time).

Handles 1-64 KiB blocks, 64-bit descriptors, flex_bg (bitmaps anywhere), meta_bg (descriptor
blocks spread over the groups, as mke2fs lays out filesystems with thousands of groups) and groups
whose bitmap was never initialised (BLOCK_UNINIT: only the group's leading metadata is in use, as
the free count in its descriptor says).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from liferaft.disk import ReadAt, need
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
RO_SPARSE_SUPER = 0x1


def _has_super(group: int, sparse: bool) -> bool:
    """Whether a group starts with a superblock backup (sparse_super: 0, 1, powers of 3, 5, 7)."""
    if not sparse or group <= 1:
        return True
    for base in (3, 5, 7):
        n = base
        while n < group:
            n *= base
        if n == group:
            return True
    return False


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
    log_bs: int = struct.unpack_from("<I", sb, 0x18)[0]
    need(log_bs <= 6, "ext: bad block size")
    bs = 1024 << log_bs
    (blocks_lo,) = struct.unpack_from("<I", sb, 0x4)
    first_data_block: int = struct.unpack_from("<I", sb, 0x14)[0]
    bpg: int = struct.unpack_from("<I", sb, 0x20)[0]
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    is64 = bool(incompat & INCOMPAT_64BIT)
    blocks = blocks_lo | (struct.unpack_from("<I", sb, 0x150)[0] << 32 if is64 else 0)
    desc_size: int = struct.unpack_from("<H", sb, 0xFE)[0] if is64 else 32
    need(bpg > 0 and bpg <= 8 * bs and blocks > first_data_block, "ext: bad geometry")
    need(blocks * bs <= size, "ext: filesystem larger than its partition")
    need(desc_size >= 32 and desc_size & (desc_size - 1) == 0 and desc_size <= 1024, "ext: bad descriptor size")
    if incompat & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG):
        kind = "ext4"
    else:
        kind = "ext3" if compat & COMPAT_JOURNAL else "ext2"
    csum = bool(ro_compat & (RO_GDT_CSUM | RO_METADATA_CSUM))
    ngroups = -(-(blocks - first_data_block) // bpg)
    per_block = bs // desc_size
    first_meta_bg: int = struct.unpack_from("<I", sb, 0x104)[0] if incompat & INCOMPAT_META_BG else ngroups
    sparse = bool(ro_compat & RO_SPARSE_SUPER)

    def descriptor_block(g: int) -> int:
        meta_group = g // per_block
        if meta_group < first_meta_bg:  # the classic table right after the superblock
            return first_data_block + 1 + meta_group
        first = meta_group * per_block  # meta_bg: the first block of the meta group's first group
        return first_data_block + first * bpg + (1 if _has_super(first, sparse) else 0)

    blocks_read: dict[int, bytes] = {}
    groups = []
    for g in range(ngroups):
        block = descriptor_block(g)
        need(block < blocks, "ext: group descriptor outside the filesystem")
        if block not in blocks_read:
            blocks_read.clear()  # descriptors are read in order: keep one block at a time
            blocks_read[block] = read_at(block * bs, bs)
            need(len(blocks_read[block]) == bs, "ext: short group descriptor block")
        at = (g % per_block) * desc_size
        d = blocks_read[block][at : at + desc_size]
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
