from __future__ import annotations

import pytest

from liferaft.crypto import keys
from liferaft.crypto.aead import AuthenticationFailed, Opener, Sealer
from liferaft.crypto.ids import IdKey
from liferaft.format.envelope import Envelope
from tests.conftest import FAST_KDF


def test_wrap_unwrap_and_wrong_password() -> None:
    master = keys.MasterKey.generate()
    rec = keys.wrap(master, b"pw", b"repo-id-16bytes!", "initial", FAST_KDF)
    assert keys.unwrap(rec, b"pw", b"repo-id-16bytes!") == master
    assert keys.unwrap(rec, b"pw2", b"repo-id-16bytes!") is None
    # bound to the repository: the same record does not open another repository
    assert keys.unwrap(rec, b"pw", b"other-id-16bytes") is None


def test_seal_open_and_binding() -> None:
    master = keys.MasterKey.generate()
    s = Sealer(master)
    sealed = s.seal(b"chunk data", b"id-a")
    o = Opener(master)
    assert o.open(sealed, b"id-a") == b"chunk data"
    with pytest.raises(AuthenticationFailed):
        o.open(sealed, b"id-b")  # a blob cannot stand in for another chunk
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(AuthenticationFailed):
        o.open(bytes(tampered), b"id-a")
    with pytest.raises(AuthenticationFailed):
        Opener(keys.MasterKey.generate()).open(sealed, b"id-a")


def test_nonces_never_repeat_and_sessions_differ() -> None:
    master = keys.MasterKey.generate()
    a, b = Sealer(master), Sealer(master)
    assert a.session_id != b.session_id
    nonces = {Envelope.from_bytes(a.seal(b"x", b"")).nonce for _ in range(1000)}
    assert len(nonces) == 1000
    assert a.seal(b"same", b"") != b.seal(b"same", b"")


def test_chunk_ids_are_keyed() -> None:
    k1, k2 = IdKey(bytes(32)), IdKey(bytes([1]) * 32)
    assert k1.chunk_id(b"a") == k1.chunk_id(b"a")
    assert k1.chunk_id(b"a") != k2.chunk_id(b"a")
    d1, d2 = k1.digest(), k1.digest()
    d1.update(k1.chunk_id(b"a"))
    d2.update(k1.chunk_id(b"b"))
    assert d1.finish(1) != d2.finish(1)
