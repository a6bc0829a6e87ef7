"""ext2/3/4 used blocks, from the block bitmaps (read one group at a time), and from the journal
when the filesystem needs recovery.

Handles 1-64 KiB blocks, 64-bit descriptors, flex_bg (bitmaps anywhere), meta_bg (descriptor
blocks spread over the groups, as mke2fs lays out filesystems with thousands of groups), bigalloc
(a bit per cluster) and groups whose bitmap was never initialised (BLOCK_UNINIT: only the group's
leading metadata is in use, as the free count in its descriptor says).

A filesystem with ``needs_recovery`` and a non-empty journal (a crash-consistent image) has
allocations that only the journal's copies of its bitmaps and descriptors hold. A block then
counts as used when the disk or any committed journal copy says so (``jbd2``). A journal that
cannot be read with certainty (external, fast commits, unknown features, damage) makes the whole
filesystem count as used, with a note. A live backup's map is read after its settling freeze,
which checkpointed the journal (``settled``): the journal is not read then.
"""

from __future__ import annotations

import bisect
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from liferaft.disk import DiskFormatError, ReadAt, need
from liferaft.disk.fsmap import FsInfo, merged, runs
from liferaft.disk.fsmap.jbd2 import Copy, Journal, JournalUncertain

MAGIC = 0xEF53
COMPAT_JOURNAL = 0x4
INCOMPAT_RECOVER = 0x4
INCOMPAT_JOURNAL_DEV = 0x8
INCOMPAT_META_BG = 0x10
INCOMPAT_EXTENTS = 0x40
INCOMPAT_64BIT = 0x80
INCOMPAT_FLEX_BG = 0x200
RO_SPARSE_SUPER = 0x1
RO_GDT_CSUM = 0x10
RO_BIGALLOC = 0x200
RO_METADATA_CSUM = 0x400
BG_BLOCK_UNINIT = 0x2
EXTENTS_FL = 0x80000
EXTENT_MAGIC = 0xF30A


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
    """First block."""
    count: int
    """Bits of its bitmap: clusters (blocks, without bigalloc)."""
    bitmap: int
    uninit: bool
    free: int
    """Free clusters, as its descriptor says."""


@dataclass(frozen=True, slots=True)
class _Geometry:
    bs: int
    cluster: int
    """Bytes a bitmap bit stands for."""
    blocks: int
    first_data_block: int
    bpg: int
    cpg: int
    desc_size: int
    per_block: int
    first_meta_bg: int
    sparse: bool
    csum: bool

    def descriptor_block(self, g: int) -> int:
        meta_group = g // self.per_block
        if meta_group < self.first_meta_bg:  # the classic table right after the superblock's block
            return 1024 // self.bs + 1 + meta_group  # (bigalloc with 1 KiB blocks: first data block 0, superblock in 1)
        first = meta_group * self.per_block  # meta_bg: the first block of the meta group's first group
        skip = (1 if _has_super(first, self.sparse) else 0) + (
            1 if self.bs == 1024 and first == 0 and self.first_data_block == 0 else 0
        )
        return self.first_data_block + first * self.bpg + skip

    def group(self, g: int, d: bytes) -> _Group:
        """Group g from its descriptor's bytes."""
        bitmap = struct.unpack_from("<I", d, 0)[0] | (struct.unpack_from("<I", d, 0x20)[0] << 32 if self.desc_size >= 64 else 0)
        free = struct.unpack_from("<H", d, 0xC)[0] | (struct.unpack_from("<H", d, 0x2C)[0] << 16 if self.desc_size >= 64 else 0)
        (flags,) = struct.unpack_from("<H", d, 0x12)
        first = self.first_data_block + g * self.bpg
        count = min(self.cpg, -(-(self.blocks - first) * self.bs // self.cluster))
        uninit = self.csum and bool(flags & BG_BLOCK_UNINIT)
        need(uninit or 0 < bitmap < self.blocks, "ext: block bitmap outside the filesystem")
        need(free <= count, "ext: more free blocks than the group holds")
        return _Group(first, count, bitmap, uninit, free)

    def groups_in(self, table: bytes, first_group: int, ngroups: int) -> Iterator[tuple[int, _Group]]:
        """The groups whose descriptors a descriptor block holds."""
        for k in range(min(self.per_block, ngroups - first_group)):
            at = k * self.desc_size
            yield first_group + k, self.group(first_group + k, table[at : at + self.desc_size])


class ExtMap:
    def __init__(
        self, read_at: ReadAt, info: FsInfo, geo: _Geometry, groups: list[_Group], journal: Journal | None, uncertain: str = ""
    ) -> None:
        self._read_at, self.info, self._geo = read_at, info, geo
        self._groups = groups
        self._journal, self._uncertain = journal, uncertain
        self.recovery = (
            "its journal holds committed transactions not yet written in place"
            if journal
            else "it needs journal recovery"
            if uncertain
            else ""
        )
        self.note = ""

    def free_extents(self, settled: bool = False) -> Iterator[tuple[int, int]]:
        journal = None if settled else self._journal
        if journal is None and (settled or not self._uncertain):
            return merged(self._free())
        try:
            if journal is None:
                raise JournalUncertain(self._uncertain)
            views = self._journal_views(journal)
        except (JournalUncertain, DiskFormatError, struct.error) as exc:
            self.note = f"needs journal recovery, and its journal cannot be read with certainty ({exc}): imaged whole"
            return iter(())
        return merged(self._free(journal, *views))

    def _journal_views(self, journal: Journal) -> tuple[dict[int, tuple[int, bool]], dict[int, list[Copy]]]:
        """What the committed journal copies say of each group they touch: from the copies of its
        descriptor, the fewest free clusters of an uninitialised view (or -1) and whether a view
        has its bitmap initialised; and the copies of its bitmap block."""
        geo = self._geo
        tables: dict[int, int] = {}  # descriptor block -> its first group
        for g in range(0, len(self._groups), geo.per_block):
            tables[geo.descriptor_block(g)] = g
        bitmap_group = {grp.bitmap: g for g, grp in enumerate(self._groups) if grp.bitmap}
        copies = journal.copies(lambda b: b in tables or b in bitmap_group)
        descriptors: dict[int, tuple[int, bool]] = {}
        for block, first in tables.items():
            for copy in copies.get(block, []):
                for g, grp in geo.groups_in(journal.content(copy), first, len(self._groups)):
                    if grp.bitmap != self._groups[g].bitmap and not grp.uninit:
                        raise JournalUncertain(f"the journal moves the block bitmap of group {g}")
                    fewest, init = descriptors.get(g, (-1, False))
                    if grp.uninit:
                        fewest = grp.free if fewest < 0 else min(fewest, grp.free)
                    descriptors[g] = (fewest, init or not grp.uninit)
        bitmaps = {g: copies[block] for block, g in bitmap_group.items() if block in copies}
        return descriptors, bitmaps

    def _bitmap(self, g: _Group) -> bytes:
        """The bitmap block of a group, as the disk has it."""
        bits = self._read_at(g.bitmap * self._geo.bs, self._geo.bs)
        need(len(bits) == self._geo.bs, "ext: short block bitmap")
        return bits

    def _free(
        self,
        journal: Journal | None = None,
        descriptors: dict[int, tuple[int, bool]] | None = None,
        bitmaps: dict[int, list[Copy]] | None = None,
    ) -> Iterator[tuple[int, int]]:
        bs, unit = self._geo.bs, self._geo.cluster
        descriptors, bitmaps = descriptors or {}, bitmaps or {}
        for n, g in enumerate(self._groups):
            if n not in descriptors and n not in bitmaps:
                if not g.uninit:
                    yield from runs(self._bitmap(g), g.count, unit, g.first * bs)
                elif g.free:
                    used = g.count - g.free
                    yield g.first * bs + used * unit, g.free * unit
                continue
            # used where the disk or any committed journal copy says so
            assert journal is not None
            size = -(-g.count // 8)
            fewest, init = descriptors.get(n, (-1, False))
            views = [g.free] if g.uninit else []
            views += [fewest] if fewest >= 0 else []  # uninitialised views: their leading used clusters
            union = 0
            for free in views:
                union |= int.from_bytes(_leading(g.count, g.count - free), "little")
            if init or not g.uninit:  # an initialised view: its bitmap block on disk
                union |= int.from_bytes(self._bitmap(g)[:size], "little")
            for copy in bitmaps.get(n, []):
                union |= int.from_bytes(journal.content(copy)[:size], "little")
            yield from runs(union.to_bytes(size, "little"), g.count, unit, g.first * bs)


def _leading(count: int, used: int) -> bytes:
    """A bitmap of count bits whose first used bits are set."""
    partial = bytes([(1 << (used % 8)) - 1]) if used % 8 else b""
    return (b"\xff" * (used // 8) + partial).ljust(-(-count // 8), b"\0")


def _extent_runs(read_at: ReadAt, bs: int, node: bytes, depth_left: int, out: list[tuple[int, int, int]]) -> None:
    """(logical, physical, length) of an extent tree node, appended in order."""
    magic, entries, _max, depth = struct.unpack_from("<HHHH", node, 0)
    need(magic == EXTENT_MAGIC and 12 + 12 * entries <= len(node) and depth <= depth_left, "ext: bad extent node")
    for i in range(entries):
        at = 12 + 12 * i
        if depth == 0:
            logical, length, hi, lo = struct.unpack_from("<IHHI", node, at)
            if length > 32768:  # an unwritten extent
                length -= 32768
            out.append((logical, lo | hi << 32, length))
        else:
            logical, lo, hi = struct.unpack_from("<IIH", node, at)
            child = read_at((lo | hi << 32) * bs, bs)
            need(len(child) == bs, "ext: short extent block")
            _extent_runs(read_at, bs, child, depth - 1, out)


def _indirect_runs(read_at: ReadAt, bs: int, i_block: bytes, count: int) -> list[tuple[int, int, int]]:
    """(logical, physical, length) of a block-mapped (ext2/3) file of count blocks."""
    per = bs // 4
    out: list[tuple[int, int, int]] = []

    def mapped() -> int:
        return out[-1][0] + out[-1][2] if out else 0

    def add(physical: int) -> None:
        logical = mapped()
        need(physical != 0, "ext: hole in the journal")
        if out and out[-1][1] + out[-1][2] == physical:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + 1)
        else:
            out.append((logical, physical, 1))

    def walk(block: int, level: int, left: int) -> int:
        """Add up to left blocks mapped below an indirect block of level; the number added."""
        need(block != 0, "ext: hole in the journal")
        raw = read_at(block * bs, bs)
        need(len(raw) == bs, "ext: short indirect block")
        done = 0
        for ptr in struct.unpack(f"<{per}I", raw):
            if done >= left:
                break
            if level == 0:
                add(ptr)
                done += 1
            else:
                done += walk(ptr, level - 1, left - done)
        return done

    ptrs = struct.unpack("<15I", i_block)
    for ptr in ptrs[:12]:
        if mapped() >= count:
            return out
        add(ptr)
    left = count - mapped()
    for level, ptr in enumerate(ptrs[12:]):
        if left <= 0:
            break
        left -= walk(ptr, level, left)
    need(left <= 0, "ext: journal shorter than its size")
    return out


def _journal(read_at: ReadAt, sb: bytes, geo: _Geometry, table0: int) -> Journal | None:
    """The journal of a filesystem that needs recovery, None when it needs none (no journal,
    not marked, or an empty log). Raises JournalUncertain when it cannot be read with certainty."""
    compat, incompat = struct.unpack_from("<II", sb, 0x5C)
    if not compat & COMPAT_JOURNAL or not incompat & INCOMPAT_RECOVER:
        return None
    inum: int = struct.unpack_from("<I", sb, 0xE0)[0]
    if inum == 0:
        raise JournalUncertain("an external journal")
    ipg, isize = struct.unpack_from("<I", sb, 0x28)[0], struct.unpack_from("<H", sb, 0x58)[0]
    need(isize >= 128 and inum <= ipg, "ext: bad inode geometry")
    bs = geo.bs
    inode = read_at(table0 * bs + (inum - 1) * isize, 128)
    need(len(inode) == 128, "ext: short journal inode")
    size = struct.unpack_from("<I", inode, 0x4)[0] | struct.unpack_from("<I", inode, 0x6C)[0] << 32
    (flags,) = struct.unpack_from("<I", inode, 0x20)
    count = size // bs
    need(1 < count <= geo.blocks, "ext: journal inode size does not fit the filesystem")
    i_block = inode[0x28:0x64]
    if flags & EXTENTS_FL:
        extents: list[tuple[int, int, int]] = []
        _extent_runs(read_at, bs, i_block, 5, extents)
    else:
        extents = _indirect_runs(read_at, bs, i_block, count)
    extents.sort()
    starts = [e[0] for e in extents]

    def where(n: int) -> int:
        k = bisect.bisect_right(starts, n) - 1
        if k < 0 or n >= extents[k][0] + extents[k][2]:
            raise JournalUncertain(f"journal block {n} is not mapped")
        physical = extents[k][1] + n - extents[k][0]
        if physical >= geo.blocks:
            raise JournalUncertain("journal block outside the filesystem")
        return physical * bs

    journal = Journal(read_at, bs, where, count)
    return None if journal.empty else journal


def probe(read_at: ReadAt, size: int) -> ExtMap | None:
    sb = read_at(1024, 1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != MAGIC:
        return None
    log_bs: int = struct.unpack_from("<I", sb, 0x18)[0]
    need(log_bs <= 6, "ext: bad block size")
    bs = 1024 << log_bs
    (blocks_lo,) = struct.unpack_from("<I", sb, 0x4)
    first_data_block: int = struct.unpack_from("<I", sb, 0x14)[0]
    log_cluster, bpg, cpg = struct.unpack_from("<III", sb, 0x1C)
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    need(not incompat & INCOMPAT_JOURNAL_DEV, "ext: an external journal device, not a filesystem")
    bigalloc = bool(ro_compat & RO_BIGALLOC)
    cluster = 1024 << log_cluster if bigalloc else bs
    need(log_cluster <= 25 and cluster >= bs, "ext: bad cluster size")
    if not bigalloc:
        cpg = bpg
    is64 = bool(incompat & INCOMPAT_64BIT)
    blocks = blocks_lo | (struct.unpack_from("<I", sb, 0x150)[0] << 32 if is64 else 0)
    desc_size: int = struct.unpack_from("<H", sb, 0xFE)[0] if is64 else 32
    need(0 < cpg <= 8 * bs and bpg == cpg * (cluster // bs) and blocks > first_data_block, "ext: bad geometry")
    need(blocks * bs <= size, "ext: filesystem larger than its partition")
    need(desc_size >= 32 and desc_size & (desc_size - 1) == 0 and desc_size <= 1024, "ext: bad descriptor size")
    if incompat & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG):
        kind = "ext4"
    else:
        kind = "ext3" if compat & COMPAT_JOURNAL else "ext2"
    ngroups = -(-(blocks - first_data_block) // bpg)
    per_block = bs // desc_size
    geo = _Geometry(
        bs=bs,
        cluster=cluster,
        blocks=blocks,
        first_data_block=first_data_block,
        bpg=bpg,
        cpg=cpg,
        desc_size=desc_size,
        per_block=per_block,
        first_meta_bg=struct.unpack_from("<I", sb, 0x104)[0] if incompat & INCOMPAT_META_BG else ngroups,
        sparse=bool(ro_compat & RO_SPARSE_SUPER),
        csum=bool(ro_compat & (RO_GDT_CSUM | RO_METADATA_CSUM)),
    )
    groups: list[_Group] = []
    table0 = 0
    for first in range(0, ngroups, per_block):  # descriptors are read in order, a block at a time
        block = geo.descriptor_block(first)
        need(block < blocks, "ext: group descriptor outside the filesystem")
        table = read_at(block * bs, bs)
        need(len(table) == bs, "ext: short group descriptor block")
        if first == 0:  # group 0's inode table holds the journal's inode
            (table0,) = struct.unpack_from("<I", table, 0x8)
            table0 |= struct.unpack_from("<I", table, 0x28)[0] << 32 if desc_size >= 64 else 0
        groups += [grp for _, grp in geo.groups_in(table, first, ngroups)]
    label = sb[0x78:0x88].split(b"\0", 1)[0].decode("utf-8", "replace")
    info = FsInfo(kind, label, str(uuid.UUID(bytes=sb[0x68:0x78])), bs, blocks * bs)
    try:
        journal = _journal(read_at, sb, geo, table0)
    except (DiskFormatError, struct.error, ValueError) as exc:
        return ExtMap(read_at, info, geo, groups, None, uncertain=str(exc) or type(exc).__name__)
    return ExtMap(read_at, info, geo, groups, journal)
