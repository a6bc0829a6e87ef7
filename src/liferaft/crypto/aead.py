"""Sealing with per-session keys: AES-256-GCM, key = HKDF(master, session id), counter nonces.

A session id is 16 random bytes, so two hosts (or two runs) never share a key, and within one
session the nonce is a counter, so no (key, nonce) pair ever repeats. Associated data binds each
envelope to its role (a chunk's id, or the kind of record), so one cannot be swapped for another.
"""

from __future__ import annotations

import itertools
import os
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from liferaft.crypto.keys import MasterKey
from liferaft.format import ENVELOPE_VERSION, SESSION_ID_SIZE
from liferaft.format.envelope import HEADER_SIZE, Envelope

_INFO = b"liferaft session key v1"


class AuthenticationFailed(Exception):
    """An envelope did not decrypt: wrong key, tampered bytes, or the wrong associated data."""


def _session_key(master: MasterKey, session_id: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=session_id, info=_INFO)
    return AESGCM(hkdf.derive(master.encryption))


class Sealer:
    """Seals for one session. Thread-safe: the nonce counter is an atomic itertools.count."""

    def __init__(self, master: MasterKey, session_id: bytes | None = None) -> None:
        self.session_id = session_id or os.urandom(SESSION_ID_SIZE)
        self._aead = _session_key(master, self.session_id)
        self._counter = itertools.count(1)

    def seal(self, plaintext: bytes | bytearray | memoryview, associated: bytes) -> bytes:
        nonce = next(self._counter).to_bytes(12, "big")
        ct = self._aead.encrypt(nonce, plaintext, associated)
        return Envelope(self.session_id, nonce, ct).to_bytes()

    def seal_into(self, plaintext: bytes | bytearray | memoryview, associated: bytes, out: memoryview) -> None:
        """Seal straight into out, which must be exactly OVERHEAD + len(plaintext) bytes: the same
        envelope as seal(), without allocating or copying the ciphertext."""
        nonce = next(self._counter).to_bytes(12, "big")
        out[:HEADER_SIZE] = bytes([ENVELOPE_VERSION]) + self.session_id + nonce
        self._aead.encrypt_into(nonce, plaintext, associated, out[HEADER_SIZE:])


class Opener:
    """Opens envelopes of any session, caching derived session keys."""

    def __init__(self, master: MasterKey) -> None:
        self._master = master
        self._keys: dict[bytes, AESGCM] = {}
        self._lock = threading.Lock()

    def open(self, sealed: bytes | memoryview, associated: bytes) -> bytes:
        env = Envelope.from_bytes(sealed)
        with self._lock:
            aead = self._keys.get(env.session_id)
            if aead is None:
                if len(self._keys) > 1024:
                    self._keys.clear()
                aead = self._keys[env.session_id] = _session_key(self._master, env.session_id)
        try:
            return aead.decrypt(env.nonce, env.ciphertext, associated)
        except InvalidTag:
            raise AuthenticationFailed("envelope failed authentication") from None
