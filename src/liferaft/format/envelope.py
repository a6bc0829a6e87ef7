"""The sealed envelope around every encrypted thing: blobs, pack footers, index deltas, snapshots.

Layout: version (1 byte) | session id (16) | nonce (12) | AES-256-GCM ciphertext with its tag.
The session id names the per-session key (HKDF of the master key), so any envelope can be opened
on its own, whichever host and session wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from liferaft.format import ENVELOPE_VERSION, NONCE_SIZE, SESSION_ID_SIZE, TAG_SIZE, check

HEADER_SIZE = 1 + SESSION_ID_SIZE + NONCE_SIZE
OVERHEAD = HEADER_SIZE + TAG_SIZE


@dataclass(frozen=True, slots=True)
class Envelope:
    session_id: bytes
    nonce: bytes
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        return bytes([ENVELOPE_VERSION]) + self.session_id + self.nonce + self.ciphertext

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Envelope:
        check(len(data) >= OVERHEAD, "envelope: too short")
        check(data[0] == ENVELOPE_VERSION, f"envelope: unknown version {data[0]}")
        return cls(
            session_id=bytes(data[1 : 1 + SESSION_ID_SIZE]),
            nonce=bytes(data[1 + SESSION_ID_SIZE : HEADER_SIZE]),
            ciphertext=bytes(data[HEADER_SIZE:]),
        )
