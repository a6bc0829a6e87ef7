"""The chunk map of an image: one chunk id per chunk, in order, cut into pieces.

Each piece (CHUNKMAP_MAGIC | u32 count | ids) is stored as a deduplicated metadata blob, so
unchanged regions of a disk cost nothing in the next snapshot (as PBS's fixed index does).
ZERO_ID marks an all-zero chunk, FREE_ID a chunk of only free filesystem blocks; neither is
stored.
"""

from __future__ import annotations

import struct

from liferaft.format import CHUNKMAP_MAGIC, ID_SIZE, ChunkId, check

PIECE_ENTRIES = 4096
HEADER = struct.Struct("<8sI")


def encode_piece(ids: list[ChunkId]) -> bytes:
    check(0 < len(ids) <= PIECE_ENTRIES, "chunk map: bad piece length")
    return HEADER.pack(CHUNKMAP_MAGIC, len(ids)) + b"".join(ids)


def decode_piece(data: bytes) -> list[ChunkId]:
    check(len(data) >= HEADER.size, "chunk map: too short")
    magic, count = HEADER.unpack_from(data)
    check(magic == CHUNKMAP_MAGIC, "chunk map: bad magic")
    check(0 < count <= PIECE_ENTRIES, "chunk map: bad count")
    check(len(data) == HEADER.size + count * ID_SIZE, "chunk map: wrong size")
    base = HEADER.size
    return [ChunkId(data[base + i * ID_SIZE : base + (i + 1) * ID_SIZE]) for i in range(count)]
