"""Keyed BLAKE3 chunk ids and the image digest.

Keyed, so the ids stored in a repository do not tell which known files a disk holds. The image
digest is keyed BLAKE3 over every chunk id in order (zero chunks included as the id of a zero
chunk): recomputed from a rebuilt image, it proves the restore end to end at one hashing pass.
"""

from __future__ import annotations

import blake3

from liferaft.format import ChunkId

_DIGEST_CONTEXT = b"liferaft image digest v1"


class IdKey:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def chunk_id(self, data: bytes | bytearray | memoryview) -> ChunkId:
        return ChunkId(blake3.blake3(data, key=self._key).digest())

    def digest(self) -> ImageDigest:
        return ImageDigest(self._key)


class ImageDigest:
    """Fed chunk ids in image order; size and chunk count are bound in at the end."""

    def __init__(self, key: bytes) -> None:
        self._hash = blake3.blake3(_DIGEST_CONTEXT, key=key)

    def update(self, chunk_id: bytes) -> None:
        self._hash.update(chunk_id)

    def finish(self, size: int) -> bytes:
        self._hash.update(size.to_bytes(8, "little"))
        return self._hash.digest()
