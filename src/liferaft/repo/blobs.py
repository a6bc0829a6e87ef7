"""A chunk to a blob's plaintext and back: zstd (one compressor per thread); the session's AEAD
seals it (into its pack, repo.packer) and opens it here.

The chunk id is the associated data, so a blob cannot stand in for another chunk, and the id is
recomputed from the plaintext on read where the caller asks (verify --read-data, restore).
"""

from __future__ import annotations

import threading

import zstandard

from liferaft.crypto.aead import Opener
from liferaft.format import FLAG_ZSTD, ChunkId

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    comp: zstandard.ZstdCompressor | None = getattr(_local, f"c{level}", None)
    if comp is None:
        comp = zstandard.ZstdCompressor(level=level, write_content_size=True)
        setattr(_local, f"c{level}", comp)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if dec is None:
        dec = _local.d = zstandard.ZstdDecompressor()
    return dec


def compress(data: bytes | bytearray, level: int, flags: int = 0) -> tuple[bytes | bytearray, int]:
    """(what to seal, flags): zstd when that shrinks the chunk, the chunk itself otherwise."""
    packed = _compressor(level).compress(data)
    if len(packed) < len(data):
        return packed, flags | FLAG_ZSTD
    return data, flags


def open_chunk(opener: Opener, cid: ChunkId, blob: bytes, flags: int, raw_length: int) -> bytes:
    """The plaintext of a blob; raises AuthenticationFailed or zstandard.ZstdError when damaged."""
    data = opener.open(blob, cid)
    if flags & FLAG_ZSTD:
        data = _decompressor().decompress(data, max_output_size=raw_length)
    return data
