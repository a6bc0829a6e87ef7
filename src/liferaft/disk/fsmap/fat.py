"""FAT12/16/32 used clusters, from the first FAT (read in pieces). The reserved sectors, the FATs
and the FAT12/16 root directory always count as used."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from liferaft.disk import ReadAt, need
from liferaft.disk.fsmap import FsInfo, merged

PIECE_ENTRIES = 1 << 16


class FatMap:
    def __init__(self, read_at: ReadAt, info: FsInfo, fat_offset: int, data_offset: int, clusters: int) -> None:
        self._read_at, self.info = read_at, info
        self._fat_offset, self._data_offset, self._clusters = fat_offset, data_offset, clusters
        self.recovery = self.note = ""  # FAT has no journal: the FAT on disk is the allocation

    def free_extents(self, settled: bool = False) -> Iterator[tuple[int, int]]:
        return merged(self._free())

    def _entries(self, first: int, count: int) -> list[int]:
        """FAT entries first .. first+count-1."""
        kind = self.info.kind
        if kind == "fat32":
            raw = self._read_at(self._fat_offset + first * 4, count * 4)
            need(len(raw) == count * 4, "fat: short FAT")
            return [v & 0x0FFFFFFF for v in struct.unpack(f"<{count}I", raw)]
        if kind == "fat16":
            raw = self._read_at(self._fat_offset + first * 2, count * 2)
            need(len(raw) == count * 2, "fat: short FAT")
            return list(struct.unpack(f"<{count}H", raw))
        start = first * 3 // 2  # fat12: 1.5 bytes an entry
        raw = self._read_at(self._fat_offset + start, (first + count) * 3 // 2 - start + 2)
        out = []
        for n in range(first, first + count):
            at = n * 3 // 2 - start
            need(at + 1 < len(raw), "fat: short FAT")
            v = raw[at] | raw[at + 1] << 8
            out.append(v >> 4 if n & 1 else v & 0xFFF)
        return out

    def _free(self) -> Iterator[tuple[int, int]]:
        cluster_bytes = self.info.block_size
        for first in range(2, self._clusters + 2, PIECE_ENTRIES):
            count = min(PIECE_ENTRIES, self._clusters + 2 - first)
            for i, value in enumerate(self._entries(first, count)):
                if value == 0:
                    yield self._data_offset + (first + i - 2) * cluster_bytes, cluster_bytes


def plausible_bpb(bs: bytes) -> bool:
    """Whether a boot sector's jump and BIOS parameter block look like a FAT's."""
    if len(bs) < 512 or bs[510:512] != b"\x55\xaa" or bs[0] not in (0xEB, 0xE9):
        return False
    bps, spc, reserved, nfats = struct.unpack_from("<HBHB", bs, 11)
    return bps in (512, 1024, 2048, 4096) and spc != 0 and spc & (spc - 1) == 0 and reserved != 0 and nfats != 0


def probe(read_at: ReadAt, size: int) -> FatMap | None:
    bs = read_at(0, 512)
    if not plausible_bpb(bs):
        return None
    bps, spc, reserved, nfats, root_entries, total16 = struct.unpack_from("<HBHBHH", bs, 11)
    (fatsz16,) = struct.unpack_from("<H", bs, 22)
    total32, fatsz32 = struct.unpack_from("<II", bs, 32)
    total = total16 or total32
    fatsz = fatsz16 or fatsz32
    need(total > 0 and fatsz > 0 and total * bps <= size, "fat: bad geometry")
    root_sectors = -(-(root_entries * 32) // bps)
    data_start = reserved + nfats * fatsz + root_sectors
    need(data_start < total, "fat: no data area")
    clusters = (total - data_start) // spc
    kind = "fat12" if clusters < 4085 else "fat16" if clusters < 65525 else "fat32"
    need((kind == "fat32") == (fatsz16 == 0), "fat: FAT size field does not fit the FAT type")
    entry_bits = {"fat12": 12, "fat16": 16, "fat32": 32}[kind]
    need((clusters + 2) * entry_bits <= fatsz * bps * 8, "fat: FAT too small for its clusters")
    label_at, id_at = (71, 67) if kind == "fat32" else (43, 39)
    label = bs[label_at : label_at + 11].decode("ascii", "replace").strip()
    serial = struct.unpack_from("<I", bs, id_at)[0]
    info = FsInfo(kind, label, f"{serial >> 16:04X}-{serial & 0xFFFF:04X}", spc * bps, total * bps)
    return FatMap(read_at, info, reserved * bps, data_start * bps, clusters)
