"""NTFS used clusters, from $Bitmap (MFT record 6): its data runs are parsed and the bitmap read
in pieces. The backup boot sector after the last cluster counts as used.

An NTFS marked dirty in $Volume, or whose $LogFile restart area is not clean (a crash-consistent
image of a running Windows, a dead machine's disk), may have allocations that only its log
holds: its $Bitmap cannot be proved complete, so it is imaged whole with a note (unless the
backup is settled: a live backup traced every write after the sync that flushed $Bitmap)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from liferaft.disk import DiskFormatError, ReadAt, need
from liferaft.disk.fsmap import FsInfo, merged, runs

PIECE = 1 << 20
"""Bitmap bytes read at a time (8 M clusters)."""


VOLUME_IS_DIRTY = 0x0001
RESTART_VOLUME_IS_CLEAN = 0x0002
LOGFILE_NO_CLIENT = 0xFFFF


def _record(read_at: ReadAt, offset: int, size: int, sector: int, magic: bytes = b"FILE") -> bytes:
    """An MFT record (or another multi-sector structure) with its update-sequence fixups applied."""
    rec = bytearray(read_at(offset, size))
    need(len(rec) == size and rec[:4] == magic, f"ntfs: bad {magic.decode()} record")
    usa_ofs, usa_count = struct.unpack_from("<HH", rec, 4)
    need(usa_count >= 1 and usa_ofs + 2 * usa_count <= size and (usa_count - 1) * sector <= size, "ntfs: bad fixups")
    usn = rec[usa_ofs : usa_ofs + 2]
    for i in range(1, usa_count):
        end = i * sector - 2
        need(rec[end : end + 2] == usn, "ntfs: torn MFT record")
        rec[end : end + 2] = rec[usa_ofs + 2 * i : usa_ofs + 2 * i + 2]
    return bytes(rec)


def _attributes(rec: bytes) -> Iterator[tuple[int, bytes]]:
    (at,) = struct.unpack_from("<H", rec, 0x14)
    while at + 8 <= len(rec):
        kind, length = struct.unpack_from("<II", rec, at)
        if kind == 0xFFFFFFFF:
            return
        need(16 <= length <= len(rec) - at, "ntfs: bad attribute length")
        yield kind, rec[at : at + length]
        at += length


def _data_runs(attr: bytes) -> list[tuple[int, int]]:
    """(first cluster, clusters) of a non-resident attribute."""
    (at,) = struct.unpack_from("<H", attr, 0x20)
    out, lcn = [], 0
    while at < len(attr) and attr[at]:
        head = attr[at]
        nlen, noff = head & 0xF, head >> 4
        need(0 < nlen <= 8 and noff <= 8 and at + 1 + nlen + noff <= len(attr), "ntfs: bad data run")
        length = int.from_bytes(attr[at + 1 : at + 1 + nlen], "little")
        if noff == 0:
            raise DiskFormatError("ntfs: sparse $Bitmap")
        lcn += int.from_bytes(attr[at + 1 + nlen : at + 1 + nlen + noff], "little", signed=True)
        need(lcn >= 0 and length > 0, "ntfs: bad data run")
        out.append((lcn, length))
        at += 1 + nlen + noff
    return out


class NtfsMap:
    def __init__(self, read_at: ReadAt, info: FsInfo, clusters: int, bitmap_runs: list[tuple[int, int]]) -> None:
        self._read_at, self.info = read_at, info
        self._clusters, self._runs = clusters, bitmap_runs
        self.recovery = self.note = ""

    def free_extents(self, settled: bool = False) -> Iterator[tuple[int, int]]:
        if self.recovery and not settled:
            self.note = f"{self.recovery}, so its $Bitmap cannot be proved complete: imaged whole"
            return iter(())
        return merged(self._free())

    def _free(self) -> Iterator[tuple[int, int]]:
        cluster = self.info.block_size
        done = 0  # clusters covered so far
        need_bytes = -(-self._clusters // 8)
        for lcn, length in self._runs:
            run_bytes = min(length * cluster, need_bytes - done // 8)
            for off in range(0, run_bytes, PIECE):
                n = min(PIECE, run_bytes - off)
                bits = self._read_at(lcn * cluster + off, n)
                need(len(bits) == n, "ntfs: short $Bitmap")
                count = min(n * 8, self._clusters - done)
                yield from runs(bits, count, cluster, done * cluster)
                done += count
            if done >= self._clusters:
                return
        need(done >= self._clusters, "ntfs: $Bitmap shorter than the volume")


def probe(read_at: ReadAt, size: int) -> NtfsMap | None:
    bs = read_at(0, 512)
    if len(bs) < 512 or bs[3:11] != b"NTFS    ":
        return None
    bps, spc_raw = struct.unpack_from("<HB", bs, 0x0B)
    spc = spc_raw if spc_raw <= 0x80 else 1 << (256 - spc_raw)
    total_sectors, mft_lcn = struct.unpack_from("<QQ", bs, 0x28)
    (cpr,) = struct.unpack_from("<b", bs, 0x40)
    need(bps in (512, 1024, 2048, 4096) and 0 < spc <= 65536, "ntfs: bad geometry")
    cluster = bps * spc
    record_size = cpr * cluster if cpr > 0 else 1 << -cpr
    need(512 <= record_size <= 65536 and total_sectors * bps <= size, "ntfs: bad geometry")
    clusters = total_sectors // spc
    need(0 < mft_lcn < clusters, "ntfs: MFT outside the volume")
    bitmap_rec = _record(read_at, mft_lcn * cluster + 6 * record_size, record_size, bps)
    bitmap_runs: list[tuple[int, int]] = []
    for kind, attr in _attributes(bitmap_rec):
        if kind == 0x80 and attr[9] == 0 and attr[8] == 1:
            bitmap_runs = _data_runs(attr)
    need(bool(bitmap_runs), "ntfs: $Bitmap has no data runs")
    need(all(lcn + n <= clusters for lcn, n in bitmap_runs), "ntfs: $Bitmap outside the volume")
    label, flags = "", -1
    try:
        for kind, attr in _attributes(_record(read_at, mft_lcn * cluster + 3 * record_size, record_size, bps)):
            if kind in (0x60, 0x70) and attr[8] == 0:  # resident $VOLUME_NAME, $VOLUME_INFORMATION
                length, offset = struct.unpack_from("<IH", attr, 0x10)
                value = attr[offset : offset + length]
                if kind == 0x60:
                    label = value.decode("utf-16-le", "replace")
                elif len(value) >= 12:
                    (flags,) = struct.unpack_from("<H", value, 0x0A)
    except (DiskFormatError, struct.error):
        pass  # no label, and no volume flags: imaged whole below
    serial = struct.unpack_from("<Q", bs, 0x48)[0]
    info = FsInfo("ntfs", label, f"{serial:016X}", cluster, clusters * cluster)
    found = NtfsMap(read_at, info, clusters, bitmap_runs)
    if flags < 0:
        found.recovery = "its $Volume (MFT record 3) has no readable volume information"
    elif flags & VOLUME_IS_DIRTY:
        found.recovery = "it is marked dirty"
    else:
        found.recovery = _logfile_state(read_at, mft_lcn * cluster + 2 * record_size, record_size, bps, cluster, clusters)
    return found


def _logfile_state(read_at: ReadAt, record_at: int, record_size: int, bps: int, cluster: int, clusters: int) -> str:
    """Why $LogFile (MFT record 2) is not clean, or "" when it is: its first restart page says
    the volume is clean or has no client, or the log was emptied (all 0xFF, as ntfs-3g leaves it)."""
    try:
        runs_ = []
        for kind, attr in _attributes(_record(read_at, record_at, record_size, bps)):
            if kind == 0x80 and attr[9] == 0 and attr[8] == 1:
                runs_ = _data_runs(attr)
        need(bool(runs_) and runs_[0][0] + 1 <= clusters, "no data runs")
        page_at = runs_[0][0] * cluster
        head = read_at(page_at, 512)
        need(len(head) == 512, "short restart page")
        if head == b"\xff" * 512:
            return ""
        (page_size,) = struct.unpack_from("<I", head, 0x10)
        need(page_size in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536), "bad restart page size")
        page = _record(read_at, page_at, page_size, 512, b"RSTR")
        (ra,) = struct.unpack_from("<H", page, 0x18)
        need(ra + 16 <= page_size, "bad restart area offset")
        in_use, ra_flags = struct.unpack_from("<HH", page, ra + 0x0C)
    except (DiskFormatError, struct.error) as exc:
        return f"its $LogFile cannot be read ({exc})"
    if in_use == LOGFILE_NO_CLIENT or ra_flags & RESTART_VOLUME_IS_CLEAN:
        return ""
    return "its $LogFile holds operations not yet written in place (not cleanly unmounted)"
