"""Index records: where each chunk's blob lives.

An index delta (one per backup session, write-once, sealed) and the local index cache share one
entry layout, sorted by chunk id so that lookups are a binary search over fixed-size records:

    chunk id (32) | pack number (u32) | offset (u64) | length (u32) | raw length (u32) | flags (u32)

The pack number indexes the record's own table of pack ids (32 bytes each), which precedes the
entries. Delta plaintext: INDEX_MAGIC | u32 packs | u32 entries | pack ids | entries. The cache file
has the same body behind CACHE_MAGIC and is not encrypted (ids are keyed hashes and reveal nothing);
after its entries come the fences (the id of every FENCE-th entry), the names of the deltas it
holds ('\n'-separated UTF-8) and that text's length (u32), so that the cache and what it holds
are one file, replaced as a whole.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from liferaft.format import CACHE_MAGIC, ID_SIZE, ChunkId, FormatError, PackId, check

ENTRY = struct.Struct("<32sIQIII")
HEADER = struct.Struct("<8sII")
TAIL = struct.Struct("<I")
FENCE = 64
"""Cache entries per block: the first id of each block (a fence) is kept in memory, the rest is
read from the file one block per lookup."""


@dataclass(frozen=True, slots=True)
class Location:
    """A blob's place: which pack, where in it, its stored and plaintext sizes, its flags."""

    pack: PackId
    offset: int
    length: int
    raw_length: int
    flags: int


def encode(magic: bytes, items: Iterable[tuple[ChunkId, Location]]) -> bytes:
    """Index body for items (any order; duplicates keep the first)."""
    packs: dict[PackId, int] = {}
    entries = bytearray()
    seen: set[ChunkId] = set()
    for cid, loc in items:
        if cid not in seen:
            seen.add(cid)
            entries += ENTRY.pack(cid, packs.setdefault(loc.pack, len(packs)), loc.offset, loc.length, loc.raw_length, loc.flags)
    return encode_packed(magic, list(packs), entries)


def encode_packed(magic: bytes, packs: Sequence[PackId], entries: bytes | bytearray) -> bytes:
    """Index body for entries already packed as ENTRY records numbering into packs (any order,
    unique ids): sorted here, without a tuple per entry."""
    check(len(entries) % ENTRY.size == 0, "index: entries not whole records")
    records = sorted(entries[at : at + ENTRY.size] for at in range(0, len(entries), ENTRY.size))
    return b"".join([HEADER.pack(magic, len(packs), len(records)), *packs, *records])


def header(data: bytes | memoryview | mmap.mmap, magic: bytes, extra: int = 0) -> tuple[int, int]:
    """(pack count, entry count) of an index body followed by extra bytes, its size checked."""
    check(len(data) >= HEADER.size, "index: too short")
    found, npacks, nentries = HEADER.unpack_from(data)
    check(found == magic, "index: bad magic")
    want = HEADER.size + npacks * ID_SIZE + nentries * ENTRY.size + extra
    check(len(data) == want, f"index: {len(data)} bytes where {want} were expected")
    return npacks, nentries


def fence_count(entries: int) -> int:
    return -(-entries // FENCE)


def cache_layout(head: bytes, text_length: int, size: int) -> tuple[int, int]:
    """(pack count, entry count) of a cache file of size bytes, from its first HEADER.size bytes
    and the length its tail gives for the delta names; the file's size checked."""
    check(len(head) == HEADER.size, "index cache: too short")
    found, npacks, nentries = HEADER.unpack(head)
    check(found == CACHE_MAGIC, "index cache: bad magic")
    want = HEADER.size + (npacks + fence_count(nentries)) * ID_SIZE + nentries * ENTRY.size + text_length + TAIL.size
    check(size == want, f"index cache: {size} bytes where {want} were expected")
    return npacks, nentries


def cache_tail(deltas: Iterable[str]) -> bytes:
    text = "\n".join(sorted(deltas)).encode()
    return text + TAIL.pack(len(text))


def rows(data: bytes, magic: bytes) -> tuple[tuple[PackId, ...], Iterator[tuple[ChunkId, int, int, int, int, int]]]:
    """(pack ids, entries) of an index body, the entries read lazily (no tuple of every entry)
    and checked as they go: a damaged one raises FormatError when reached."""
    npacks, _ = header(data, magic)
    base = HEADER.size
    packs = tuple(PackId(data[base + i * ID_SIZE : base + (i + 1) * ID_SIZE]) for i in range(npacks))

    def entries() -> Iterator[tuple[ChunkId, int, int, int, int, int]]:
        previous = b""
        for cid, pack_no, offset, length, raw, flags in ENTRY.iter_unpack(memoryview(data)[base + npacks * ID_SIZE :]):
            check(pack_no < npacks, "index: pack number out of range")
            if cid <= previous:
                raise FormatError("index: entries not sorted")
            previous = cid
            yield ChunkId(cid), pack_no, offset, length, raw, flags

    return packs, entries()
