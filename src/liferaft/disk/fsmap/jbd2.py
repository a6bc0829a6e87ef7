"""The jbd2 journal of ext3/ext4, read as a replay would read it, to learn which copies of chosen
metadata blocks (block bitmaps, group descriptors) a replay may write over them.

A filesystem that needs recovery (a crash-consistent image: a clone of a running VM's disk, a dead
machine's disk) has committed transactions in its journal that were never checkpointed. Their
block allocations exist only in the journal's copies of the bitmaps, while the file data is
already in those blocks (ordered mode). ``ext`` takes every committed copy into its used-block
map, so nothing the replayed filesystem uses is left out of the image.

The log is walked from the journal superblock's start and sequence: descriptor blocks (with 32 or
64-bit tags, checksum v2 or v3 tags, escaped data blocks), commit blocks, revoke blocks, wrapping
at the end of the journal, until a block whose magic or sequence does not follow, as the kernel's
scan pass does. Only transactions closed by their commit block count. Every checksum of v2/v3 is
checked; a mismatch, an unknown feature, fast commits or anything that does not parse raises
``JournalUncertain``, and the caller images the filesystem whole.

Revoke records are not applied: the union of every committed copy with the block on disk is a
superset of what the replay leaves (a replay writes the newest unrevoked copy), so it can only
count a few blocks as used that the replayed filesystem has freed, never the other way round. The
same holds wherever the replay would stop earlier than this walk: more copies, never fewer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import crc32c

from liferaft.disk import DiskFormatError, ReadAt

MAGIC = 0xC03B3998
DESCRIPTOR, COMMIT, SB_V1, SB_V2, REVOKE = 1, 2, 3, 4, 5
FLAG_ESCAPE, FLAG_SAME_UUID, FLAG_LAST = 0x1, 0x2, 0x8
INCOMPAT_REVOKE, INCOMPAT_64BIT, INCOMPAT_ASYNC_COMMIT = 0x1, 0x2, 0x4
INCOMPAT_CSUM_V2, INCOMPAT_CSUM_V3, INCOMPAT_FAST_COMMIT = 0x8, 0x10, 0x20
KNOWN_INCOMPAT = INCOMPAT_REVOKE | INCOMPAT_64BIT | INCOMPAT_ASYNC_COMMIT | INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3
CHECKSUM_CRC32C = 4


class JournalUncertain(DiskFormatError):
    """The journal cannot be read with certainty: image the filesystem whole."""


@dataclass(frozen=True, slots=True)
class Copy:
    """A committed copy of a filesystem block in the journal."""

    offset: int
    """Byte offset of the copy in the filesystem."""
    escaped: bool
    """Its first four bytes were the journal magic and are stored as zeros."""
    checksum: int | None
    """The tag's checksum (v2: 16 bits, v3: 32 bits) over the stored copy, or None."""
    sequence: int


def _raw_crc(seed: int, data: bytes) -> int:
    """The kernel's crc32c(seed, data): CRC-32C without the standard pre- and post-inversion."""
    return int(crc32c.crc32c(data, seed ^ 0xFFFFFFFF)) ^ 0xFFFFFFFF


class Journal:
    """An internal journal: ``where(n)`` gives the filesystem byte offset of journal block n."""

    def __init__(self, read_at: ReadAt, block_size: int, where: Callable[[int], int], blocks: int) -> None:
        self._read_at, self._bs, self._where = read_at, block_size, where
        sb = self.block(0)
        magic, kind, _ = struct.unpack_from(">III", sb, 0)
        if magic != MAGIC or kind not in (SB_V1, SB_V2):
            raise JournalUncertain("no journal superblock")
        jbs, self.maxlen, self.first, self.sequence, self.start = struct.unpack_from(">IIIII", sb, 12)
        if jbs != block_size:
            raise JournalUncertain(f"journal block size {jbs} differs from the filesystem's {block_size}")
        # only incompatible features matter: v1 checksums (async commits) are not needed (see above)
        incompat: int = struct.unpack_from(">I", sb, 0x28)[0] if kind == SB_V2 else 0
        if incompat & INCOMPAT_FAST_COMMIT:
            raise JournalUncertain("the journal has fast commits")
        if incompat & ~KNOWN_INCOMPAT:
            raise JournalUncertain(f"unknown journal features 0x{incompat & ~KNOWN_INCOMPAT:x}")
        if not (0 < self.first < self.maxlen <= blocks):
            raise JournalUncertain("journal superblock geometry does not fit its inode")
        self.csum3 = bool(incompat & INCOMPAT_CSUM_V3)
        self.csum = self.csum3 or bool(incompat & INCOMPAT_CSUM_V2)
        self.is64 = bool(incompat & INCOMPAT_64BIT)
        self.seed = 0
        if self.csum:
            if sb[0x50] != CHECKSUM_CRC32C:
                raise JournalUncertain(f"unknown journal checksum type {sb[0x50]}")
            (stored,) = struct.unpack_from(">I", sb, 0xFC)
            if _raw_crc(0xFFFFFFFF, sb[:0xFC] + b"\0\0\0\0" + sb[0x100:1024]) != stored:
                raise JournalUncertain("journal superblock checksum mismatch")
            self.seed = _raw_crc(0xFFFFFFFF, sb[0x30:0x40])
        if self.start and not (self.first <= self.start < self.maxlen):
            raise JournalUncertain("journal start outside the log")

    def block(self, n: int) -> bytes:
        return self._read(self._where(n))

    def _read(self, offset: int) -> bytes:
        data = self._read_at(offset, self._bs)
        if len(data) != self._bs:
            raise JournalUncertain("short journal block")
        return data

    @property
    def empty(self) -> bool:
        """Nothing to replay (s_start 0: the journal was flushed)."""
        return bool(self.start == 0)

    def _tag_bytes(self) -> int:
        if self.csum3:
            return 16
        return (12 + (2 if self.csum else 0)) - (0 if self.is64 else 4)

    def _tail_ok(self, data: bytes) -> bool:
        """A descriptor or revoke block's tail checksum (v2/v3)."""
        (stored,) = struct.unpack_from(">I", data, self._bs - 4)
        return bool(_raw_crc(self.seed, data[: self._bs - 4] + b"\0\0\0\0") == stored)

    def _tags(self, data: bytes) -> Iterator[tuple[int, int, int | None]]:
        """(filesystem block, flags, checksum) of a descriptor block's tags."""
        size, at = self._tag_bytes(), 12
        end = self._bs - (4 if self.csum else 0)
        while at + size <= end:
            (lo,) = struct.unpack_from(">I", data, at)
            if self.csum3:
                flags, hi, csum = struct.unpack_from(">III", data, at + 4)
                checksum: int | None = csum
            else:
                csum16, flags = struct.unpack_from(">HH", data, at + 4)
                hi = struct.unpack_from(">I", data, at + 8)[0] if self.is64 else 0
                checksum = csum16 if self.csum else None
            yield lo | (hi << 32 if self.is64 else 0), flags, checksum
            at += size + (0 if flags & FLAG_SAME_UUID else 16)
            if flags & FLAG_LAST:
                return
        raise JournalUncertain("descriptor block without a last tag")

    def copies(self, wanted: Callable[[int], bool]) -> dict[int, list[Copy]]:
        """Every copy of a wanted filesystem block in a committed transaction, by block."""
        found: dict[int, list[Copy]] = {}
        if self.empty:
            return found
        span = self.maxlen - self.first
        n, seq, steps = self.start, self.sequence, 0
        pending: list[tuple[int, Copy]] = []

        def step(k: int) -> int:
            k += 1
            return self.first if k >= self.maxlen else k

        while steps < span:
            data = self.block(n)
            magic, kind, bseq = struct.unpack_from(">III", data, 0)
            if magic != MAGIC or bseq != seq:
                break  # the end of the log
            steps += 1
            if kind == DESCRIPTOR:
                if self.csum and not self._tail_ok(data):
                    raise JournalUncertain(f"descriptor block {n} of transaction {seq}: checksum mismatch")
                for block, flags, checksum in self._tags(data):
                    n = step(n)
                    steps += 1
                    if wanted(block):
                        pending.append((block, Copy(self._where(n), bool(flags & FLAG_ESCAPE), checksum, seq)))
            elif kind == COMMIT:
                if self.csum:
                    (stored,) = struct.unpack_from(">I", data, 16)
                    if _raw_crc(self.seed, data[:16] + b"\0\0\0\0" + data[20:]) != stored:
                        raise JournalUncertain(f"commit block of transaction {seq}: checksum mismatch")
                for block, copy in pending:
                    found.setdefault(block, []).append(copy)
                pending.clear()
                seq = (seq + 1) & 0xFFFFFFFF
            elif kind == REVOKE:
                if self.csum and not self._tail_ok(data):
                    raise JournalUncertain(f"revoke block of transaction {seq}: checksum mismatch")
            else:
                break  # an unknown block type ends the scan, as in the kernel
            n = step(n)
        return found

    def content(self, copy: Copy) -> bytes:
        """The block as the replay writes it: checksum checked, escape undone."""
        data = self._read(copy.offset)
        if copy.checksum is not None:
            crc = _raw_crc(_raw_crc(self.seed, struct.pack(">I", copy.sequence)), data)
            if (crc if self.csum3 else crc & 0xFFFF) != copy.checksum:
                raise JournalUncertain(f"journal copy in transaction {copy.sequence}: checksum mismatch")
        if copy.escaped:
            data = struct.pack(">I", MAGIC) + data[4:]
        return data
