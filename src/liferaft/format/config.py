"""The repository config: the one plaintext object, read before any key is known.

It says which format and features a reader must understand, the chunk size, and the repository
id (which names the local cache and is bound into every wrapped key).
"""

from __future__ import annotations

from dataclasses import dataclass

from liferaft.format import canonical, check

CHUNK_SIZE_MIN = 256 * 1024
CHUNK_SIZE_MAX = 8 * 1024 * 1024
CHUNK_SIZE_DEFAULT = 1024 * 1024
PACK_SIZE_DEFAULT = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RepoConfig:
    version: int
    features: tuple[str, ...]
    repo_id: bytes
    chunk_size: int
    pack_size: int
    compression_level: int

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "liferaft": "repository",
                "version": self.version,
                "features": list(self.features),
                "id": self.repo_id.hex(),
                "chunk_size": self.chunk_size,
                "pack_size": self.pack_size,
                "compression_level": self.compression_level,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RepoConfig:
        obj = canonical.loads(data, "config")
        check(obj.get("liferaft") == "repository", "config: not a liferaft repository config")
        features = canonical.field(obj, "features", list, "config")
        check(all(isinstance(f, str) for f in features), "config: features are not strings")
        cfg = cls(
            version=canonical.field(obj, "version", int, "config"),
            features=tuple(features),
            repo_id=canonical.hexfield(obj, "id", 16, "config"),
            chunk_size=canonical.field(obj, "chunk_size", int, "config"),
            pack_size=canonical.field(obj, "pack_size", int, "config"),
            compression_level=canonical.field(obj, "compression_level", int, "config"),
        )
        return cfg

    def validate(self) -> None:
        """Reject values this code cannot work with (called after the version check)."""
        size = self.chunk_size
        check(
            CHUNK_SIZE_MIN <= size <= CHUNK_SIZE_MAX and size & (size - 1) == 0,
            f"config: chunk size {size} is not a power of two from 256 KiB to 8 MiB",
        )
        check(self.pack_size >= self.chunk_size, "config: pack size below chunk size")
        check(
            -7 <= self.compression_level <= 22,
            f"config: bad compression level {self.compression_level}: zstd levels run from -7 (fastest) to 22",
        )
