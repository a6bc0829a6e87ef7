"""Pack layout: many sealed blobs in one object, with a sealed footer that lists them.

    PACK_MAGIC (8) | blob envelopes ... | footer envelope | footer length (u32) | PACK_TRAILER_MAGIC (8)

The footer's plaintext is u32 count, then per blob: chunk id (32) | offset (u64) | length (u32) |
raw length (u32) | flags (u32). A pack is named by the BLAKE3-256 of all its bytes, so a stored pack
can be checked without any key; the footer lets the index be rebuilt from packs alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from liferaft.format import PACK_MAGIC, PACK_TRAILER_MAGIC, ChunkId, check

FOOTER_ENTRY = struct.Struct("<32sQIII")
TRAILER = struct.Struct("<I8s")
COUNT = struct.Struct("<I")
HEADER_SIZE = len(PACK_MAGIC)


@dataclass(frozen=True, slots=True)
class PackEntry:
    chunk_id: ChunkId
    offset: int
    length: int
    raw_length: int
    flags: int


def encode_footer(entries: list[PackEntry]) -> bytes:
    rows = [FOOTER_ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_length, e.flags) for e in entries]
    return COUNT.pack(len(entries)) + b"".join(rows)


def decode_footer(data: bytes) -> list[PackEntry]:
    check(len(data) >= COUNT.size, "pack footer: too short")
    (count,) = COUNT.unpack_from(data)
    check(len(data) == COUNT.size + count * FOOTER_ENTRY.size, "pack footer: wrong size")
    return [PackEntry(ChunkId(c), o, n, r, f) for c, o, n, r, f in FOOTER_ENTRY.iter_unpack(data[COUNT.size :])]


def trailer(footer_length: int) -> bytes:
    return TRAILER.pack(footer_length, PACK_TRAILER_MAGIC)


def split(pack: bytes | bytearray | memoryview) -> tuple[memoryview, memoryview]:
    """(whole pack view, sealed footer) after checking magic and trailer."""
    view = memoryview(pack)
    check(len(view) >= HEADER_SIZE + TRAILER.size, "pack: too short")
    check(bytes(view[:HEADER_SIZE]) == PACK_MAGIC, "pack: bad magic")
    footer_length, magic = TRAILER.unpack_from(view, len(view) - TRAILER.size)
    check(magic == PACK_TRAILER_MAGIC, "pack: bad trailer")
    end = len(view) - TRAILER.size
    check(HEADER_SIZE + footer_length <= end, "pack: footer length out of range")
    return view, view[end - footer_length : end]


def check_entries(entries: list[PackEntry], blobs_end: int) -> None:
    """Entries must tile the blob area from the header on, in order, without gaps or overlap."""
    at = HEADER_SIZE
    for e in entries:
        check(e.offset == at and e.length > 0, "pack footer: entries do not tile the pack")
        at += e.length
    check(at == blobs_end, "pack footer: entries do not reach the footer")
