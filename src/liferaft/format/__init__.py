"""On-disk records of a liferaft repository as pure bytes <-> frozen dataclasses.

Nothing here does I/O or cryptography: each module turns one kind of record into bytes and back,
and rejects malformed bytes with :class:`FormatError`. Every magic number and version lives in
this file so that the whole on-disk vocabulary can be read in one place (docs/design.md explains
each record).
"""

from __future__ import annotations

from typing import NewType

FORMAT_VERSION = 1
"""Repository format this code writes and reads; newer repositories are refused."""

KNOWN_FEATURES: frozenset[str] = frozenset()
"""Feature flags this code understands; a repository requiring any other is refused."""

ENVELOPE_VERSION = 1
PACK_MAGIC = b"LRFTPAK1"
PACK_TRAILER_MAGIC = b"LRFTEND1"
INDEX_MAGIC = b"LRFTIDX1"
CACHE_MAGIC = b"LRFTCCH2"
CHUNKMAP_MAGIC = b"LRFTMAP1"

ID_SIZE = 32
SESSION_ID_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16

ChunkId = NewType("ChunkId", bytes)
"""Keyed BLAKE3-256 of a chunk's plaintext."""
PackId = NewType("PackId", bytes)
"""BLAKE3-256 (unkeyed) of a pack's stored bytes."""
SnapshotId = NewType("SnapshotId", str)
"""Hex SHA-256 of a snapshot object's stored bytes."""

ZERO_ID = ChunkId(b"\x00" * ID_SIZE)
"""Chunk-map marker: the chunk is all zeros and nothing is stored for it."""
FREE_ID = ChunkId(b"\xff" * ID_SIZE)
"""Chunk-map marker: the chunk holds only free filesystem blocks; nothing was read or stored, and
a restore leaves a hole, discards or zeroes it."""
UNSTORED = frozenset({ZERO_ID, FREE_ID})

# Blob flags, as kept in pack footers and index entries.
FLAG_ZSTD = 1
"""The blob's plaintext is zstd-compressed (else stored raw because it did not shrink)."""
FLAG_META = 2
"""The blob is repository metadata (a chunk-map piece), not image data."""


class FormatError(ValueError):
    """Bytes that do not parse as the record they claim to be."""


def check(condition: bool, what: str) -> None:
    """Raise FormatError(what) unless condition holds; the one way parsers reject input."""
    if not condition:
        raise FormatError(what)
