"""Fitting a restored partition table to a disk of another size: the GPT backup header and entry
array move to the new end (and the protective MBR is resized), and the last partition may be given
a new end (grow or shrink; its filesystem is resized by the caller). Works on the target's bytes
through read_at / write_at; checks before it writes anything.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from liferaft.disk import DiskFormatError, ReadAt, need
from liferaft.disk.layout import SECTOR, read_layout
from liferaft.format.layout import EXTENDED_MBR_TYPES

WriteAt = Callable[[int, bytes], None]


def fit(read_at: ReadAt, write_at: WriteAt, old_size: int, new_size: int, last_end: int | None = None) -> None:
    """Rewrite the table of a disk image now on a disk of new_size bytes; with last_end, the last
    partition ends there (exclusive byte offset)."""
    layout = read_layout(read_at, old_size)
    if layout.table == "gpt":
        _fit_gpt(read_at, write_at, old_size, new_size, last_end)
    elif layout.table == "mbr":
        if last_end is not None:
            _fit_mbr(read_at, write_at, new_size, last_end)
    else:
        raise DiskFormatError("no partition table to fit")


def _crc_header(hdr: bytearray, hsize: int) -> None:
    hdr[16:20] = b"\0\0\0\0"
    hdr[16:20] = struct.pack("<I", zlib.crc32(bytes(hdr[:hsize])))


def _fit_gpt(read_at: ReadAt, write_at: WriteAt, old_size: int, new_size: int, last_end: int | None) -> None:
    hdr = bytearray(read_at(SECTOR, SECTOR))
    need(hdr[:8] == b"EFI PART", "gpt: no primary header on the target")
    (hsize,) = struct.unpack_from("<I", hdr, 12)
    entries_lba, count, esize = struct.unpack_from("<QII", hdr, 72)
    entries = bytearray(read_at(entries_lba * SECTOR, count * esize))
    entry_sectors = -(-(count * esize) // SECTOR)
    last_lba = new_size // SECTOR - 1
    last_usable = last_lba - entry_sectors - 1
    used = [i for i in range(count) if entries[i * esize : i * esize + 16] != bytes(16)]
    ends: list[tuple[int, int]] = [(struct.unpack_from("<Q", entries, i * esize + 40)[0], i) for i in used]
    need(bool(ends), "gpt: no partitions")
    if last_end is not None:
        _, i = max(ends)
        start_lba = struct.unpack_from("<Q", entries, i * esize + 32)[0]
        new_last = last_end // SECTOR - 1
        need(start_lba <= new_last <= last_usable, "gpt: the last partition does not fit the new size")
        struct.pack_into("<Q", entries, i * esize + 40, new_last)
        ends = [(struct.unpack_from("<Q", entries, j * esize + 40)[0], j) for j in used]
    need(max(ends)[0] <= last_usable, "gpt: partitions reach beyond the new end of the disk")
    struct.pack_into("<Q", hdr, 32, last_lba)  # where the backup header goes
    struct.pack_into("<Q", hdr, 48, last_usable)
    struct.pack_into("<I", hdr, 88, zlib.crc32(bytes(entries)))
    backup = bytearray(hdr)
    struct.pack_into("<QQ", backup, 24, last_lba, 1)
    struct.pack_into("<Q", backup, 72, last_lba - entry_sectors)
    _crc_header(hdr, hsize)
    _crc_header(backup, hsize)
    mbr = bytearray(read_at(0, SECTOR))
    struct.pack_into("<I", mbr, 446 + 12, min(new_size // SECTOR - 1, 0xFFFFFFFF))
    # everything checked: write. The old backup header, if now inside the disk, is cleared.
    old_backup = old_size - SECTOR
    if old_backup < new_size and old_backup != last_lba * SECTOR:
        write_at(old_backup, bytes(SECTOR))
    write_at(0, bytes(mbr))
    write_at(entries_lba * SECTOR, bytes(entries))
    write_at(SECTOR, bytes(hdr))
    write_at((last_lba - entry_sectors) * SECTOR, bytes(entries))
    write_at(last_lba * SECTOR, bytes(backup))


def _fit_mbr(read_at: ReadAt, write_at: WriteAt, new_size: int, last_end: int) -> None:
    mbr = bytearray(read_at(0, SECTOR))
    slots = [(struct.unpack_from("<II", mbr, 446 + 16 * i + 8), i) for i in range(4) if mbr[446 + 16 * i + 4]]
    need(bool(slots), "mbr: no partitions")
    (lba, _count), i = max(slots, key=lambda s: s[0][0] + s[0][1])
    need(
        mbr[446 + 16 * i + 4] not in EXTENDED_MBR_TYPES, "mbr: the last partition is a logical one; only a primary can be resized"
    )
    need(lba * SECTOR < last_end <= new_size, "mbr: the last partition does not fit the new size")
    struct.pack_into("<I", mbr, 446 + 16 * i + 12, last_end // SECTOR - lba)
    write_at(0, bytes(mbr))
