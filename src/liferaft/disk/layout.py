"""Partition tables: MBR (primary, extended and logical partitions) and GPT (primary header,
falling back to the backup header, each CRC-checked; protective MBR).

Everything outside the partitions (boot code, the gap before the first partition where GRUB's
core image lives, GPT headers and entries) is not described here: the backup images it whole.
"""

from __future__ import annotations

import itertools
import struct
import uuid
import zlib
from dataclasses import dataclass

from liferaft.disk import DiskFormatError, ReadAt, need
from liferaft.disk.fsmap.fat import plausible_bpb
from liferaft.format.layout import EXTENDED_MBR_TYPES, EXTENDED_TYPES, PartitionRecord

SECTOR = 512
GPT_SIGNATURE = b"EFI PART"
MAX_LOGICAL = 128


Partition = PartitionRecord
"""A partition as the table has it: the snapshot's record of it is the same."""


@dataclass(frozen=True, slots=True)
class Layout:
    table: str
    """'gpt', 'mbr' or 'none' (a bare filesystem or unknown content)."""
    size: int
    partitions: tuple[Partition, ...]
    disk_uuid: str = ""


def read_layout(read_at: ReadAt, size: int) -> Layout:
    """The partition table of a disk of size bytes; 'none' when there is no valid one."""
    try:
        mbr = read_at(0, SECTOR)
        if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa" or filesystem_boot_sector(mbr):
            return Layout("none", size, ())
        entries = _mbr_entries(mbr)
        if any(e[1] == 0xEE for e in entries):
            gpt = _read_gpt(read_at, size)
            if gpt is not None:
                return gpt
            return Layout("none", size, ())
        return _read_mbr(read_at, size, entries)
    except (DiskFormatError, struct.error):
        return Layout("none", size, ())


def filesystem_boot_sector(sector: bytes) -> bool:
    """Whether a first sector is an NTFS or FAT boot sector (a partition or bare filesystem, such
    as a Windows C: partition on its own), not a master boot record: both end in 0x55AA, and mkntfs
    and mkfs.vfat leave the bytes where an MBR keeps its entries zero, which reads as an empty table."""
    if sector[3:11] == b"NTFS    ":
        return True
    fat = plausible_bpb(sector) and (sector[0x36:0x39] == b"FAT" or sector[0x52:0x57] == b"FAT32")
    # a boot loader may keep an old BPB in a real MBR: only an empty table makes it a filesystem
    return fat and all(e[1] == 0 for e in _mbr_entries(sector))


def _mbr_entries(sector: bytes) -> list[tuple[int, int, int, int]]:
    """(status, type, first LBA, sectors) of the four entries."""
    out = []
    for i in range(4):
        status, ptype, lba, count = struct.unpack_from("<B3xB3xII", sector, 446 + 16 * i)
        out.append((status, ptype, lba, count))
    return out


def _read_mbr(read_at: ReadAt, size: int, entries: list[tuple[int, int, int, int]]) -> Layout:
    parts: list[Partition] = []
    for n, (status, ptype, lba, count) in enumerate(entries, start=1):
        if ptype == 0 or count == 0:
            continue
        need(status in (0, 0x80), "mbr: bad status byte")
        start, length = lba * SECTOR, count * SECTOR
        need(start + length <= size and start > 0, "mbr: partition beyond the disk")
        parts.append(Partition(n, start, length, f"0x{ptype:02x}", bootable=status == 0x80))
        if ptype in EXTENDED_MBR_TYPES:
            parts += _logical(read_at, size, start, length)
    _check_disjoint(parts)
    return Layout("mbr", size, tuple(parts))


def _logical(read_at: ReadAt, size: int, ext_start: int, ext_size: int) -> list[Partition]:
    """The logical partitions of an extended one; a broken chain keeps what came before the break
    (the rest of the extended partition is then imaged whole)."""
    out: list[Partition] = []
    try:
        _walk_chain(read_at, ext_start, ext_size, out)
    except (DiskFormatError, struct.error):
        pass
    return out


def _walk_chain(read_at: ReadAt, ext_start: int, ext_size: int, out: list[Partition]) -> None:
    ebr = ext_start
    seen: set[int] = set()
    while len(out) < MAX_LOGICAL:
        need(ebr not in seen and ext_start <= ebr < ext_start + ext_size, "mbr: bad extended chain")
        seen.add(ebr)
        sector = read_at(ebr, SECTOR)
        need(len(sector) == SECTOR and sector[510:512] == b"\x55\xaa", "mbr: bad extended boot record")
        (s1, t1, l1, c1), (_, t2, l2, c2) = _mbr_entries(sector)[:2]
        if t1 and c1:
            start = ebr + l1 * SECTOR
            need(start + c1 * SECTOR <= ext_start + ext_size, "mbr: logical partition outside its extended one")
            out.append(Partition(5 + len(out), start, c1 * SECTOR, f"0x{t1:02x}", bootable=s1 == 0x80))
        if not (t2 and c2):
            break
        ebr = ext_start + l2 * SECTOR


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def _read_gpt(read_at: ReadAt, size: int) -> Layout | None:
    for header_lba in (1, size // SECTOR - 1):  # primary, then backup
        try:
            return _gpt_at(read_at, size, header_lba)
        except (DiskFormatError, struct.error, UnicodeDecodeError):
            continue
    return None


def _gpt_at(read_at: ReadAt, size: int, header_lba: int) -> Layout:
    hdr = read_at(header_lba * SECTOR, SECTOR)
    need(len(hdr) == SECTOR and hdr[:8] == GPT_SIGNATURE, "gpt: no header")
    hsize, hcrc = struct.unpack_from("<II", hdr, 12)
    need(92 <= hsize <= SECTOR, "gpt: bad header size")
    need(zlib.crc32(hdr[:16] + b"\0\0\0\0" + hdr[20:hsize]) == hcrc, "gpt: header checksum")
    current, _backup, first, last = struct.unpack_from("<QQQQ", hdr, 24)
    need(current == header_lba, "gpt: header in the wrong place")
    disk_guid = hdr[56:72]
    entries_lba, count, esize, ecrc = struct.unpack_from("<QIII", hdr, 72)
    need(128 <= esize <= 4096 and esize % 8 == 0 and 0 < count <= 4096, "gpt: bad entry array")
    table = read_at(entries_lba * SECTOR, count * esize)
    need(len(table) == count * esize and zlib.crc32(table) == ecrc, "gpt: entries checksum")
    parts = []
    for i in range(count):
        e = table[i * esize : (i + 1) * esize]
        if e[:16] == b"\0" * 16:
            continue
        lo, hi = struct.unpack_from("<QQ", e, 32)
        need(first <= lo <= hi <= last and (hi + 1) * SECTOR <= size, "gpt: partition outside the usable area")
        name = e[56:128].decode("utf-16-le").split("\0", 1)[0]
        parts.append(Partition(i + 1, lo * SECTOR, (hi - lo + 1) * SECTOR, _guid(e[:16]), name, _guid(e[16:32])))
    _check_disjoint(parts)
    return Layout("gpt", size, tuple(parts), _guid(disk_guid))


def _check_disjoint(parts: list[Partition]) -> None:
    """Partitions may not overlap, except logical ones inside their extended partition."""
    plain = sorted((p for p in parts if p.type not in EXTENDED_TYPES), key=lambda p: p.start)
    for a, b in itertools.pairwise(plain):
        if a.end > b.start:
            raise DiskFormatError("partitions overlap")


def data_partitions(layout: Layout) -> list[Partition]:
    """The partitions that hold filesystems (extended containers left out), by start."""
    return sorted((p for p in layout.partitions if p.type not in EXTENDED_TYPES), key=lambda p: p.start)
