"""The master key and its wrapping with a password (Argon2id, then AES-256-GCM)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from liferaft.format.keyfile import KdfParams, KeyRecord

MASTER_KEY_SIZE = 64


@dataclass(frozen=True, slots=True)
class KdfCost:
    """Argon2id cost of new key records (recorded in each record, so opening needs no setting)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 2


DEFAULT_COST = KdfCost()


@dataclass(frozen=True, slots=True)
class MasterKey:
    encryption: bytes
    """32 bytes: HKDF input for session keys."""
    ids: bytes
    """32 bytes: the BLAKE3 key of chunk ids."""

    @classmethod
    def generate(cls) -> MasterKey:
        return cls.from_bytes(os.urandom(MASTER_KEY_SIZE))

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        if len(raw) != MASTER_KEY_SIZE:
            raise ValueError("master key must be 64 bytes")
        return cls(raw[:32], raw[32:])

    def to_bytes(self) -> bytes:
        return self.encryption + self.ids


def _derive(password: bytes, kdf: KdfParams) -> bytes:
    return hash_secret_raw(password, kdf.salt, kdf.time_cost, kdf.memory_kib, kdf.parallelism, 32, Type.ID)


def wrap(master: MasterKey, password: bytes, repo_id: bytes, label: str, cost: KdfCost | None = None) -> KeyRecord:
    cost = cost or DEFAULT_COST  # looked up now, so tests can weaken it for speed
    kdf = KdfParams(cost.time_cost, cost.memory_kib, cost.parallelism, os.urandom(16))
    nonce = os.urandom(12)
    wrapped = AESGCM(_derive(password, kdf)).encrypt(nonce, master.to_bytes(), repo_id)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return KeyRecord(kdf, nonce, wrapped, created, label)


def unwrap(record: KeyRecord, password: bytes, repo_id: bytes) -> MasterKey | None:
    """The master key, or None when the password (or repository id) does not fit this record."""
    try:
        raw = AESGCM(_derive(password, record.kdf)).decrypt(record.nonce, record.wrapped, repo_id)
    except InvalidTag:
        return None
    return MasterKey.from_bytes(raw)
