"""A key record: the master key wrapped with one password (Argon2id + AES-256-GCM).

A repository holds one record per password under ``keys/``; any one of them opens it.
"""

from __future__ import annotations

from dataclasses import dataclass

from liferaft.format import canonical, check


@dataclass(frozen=True, slots=True)
class KdfParams:
    time_cost: int
    memory_kib: int
    parallelism: int
    salt: bytes


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kdf: KdfParams
    nonce: bytes
    wrapped: bytes
    """AES-256-GCM of the 64-byte master key; associated data: the repository id."""
    created: str
    label: str

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "liferaft": "key",
                "kdf": "argon2id",
                "time_cost": self.kdf.time_cost,
                "memory_kib": self.kdf.memory_kib,
                "parallelism": self.kdf.parallelism,
                "salt": self.kdf.salt.hex(),
                "nonce": self.nonce.hex(),
                "wrapped": self.wrapped.hex(),
                "created": self.created,
                "label": self.label,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyRecord:
        obj = canonical.loads(data, "key")
        check(obj.get("liferaft") == "key" and obj.get("kdf") == "argon2id", "key: unknown kind")
        kdf = KdfParams(
            time_cost=canonical.field(obj, "time_cost", int, "key"),
            memory_kib=canonical.field(obj, "memory_kib", int, "key"),
            parallelism=canonical.field(obj, "parallelism", int, "key"),
            salt=canonical.hexfield(obj, "salt", 16, "key"),
        )
        check(kdf.time_cost >= 1 and kdf.memory_kib >= 8 and kdf.parallelism >= 1, "key: bad KDF")
        return cls(
            kdf=kdf,
            nonce=canonical.hexfield(obj, "nonce", 12, "key"),
            wrapped=canonical.hexfield(obj, "wrapped", 64 + 16, "key"),
            created=canonical.field(obj, "created", str, "key"),
            label=canonical.field(obj, "label", str, "key"),
        )
