"""Golden bytes for every on-disk record: a change to any of them is a format change and must
come with a FORMAT_VERSION bump and an update of docs/design.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.format import CACHE_MAGIC, INDEX_MAGIC, FormatError
from liferaft.format import index as index_fmt
from liferaft.format import pack as pack_fmt
from liferaft.format.chunkmap import decode_piece
from liferaft.format.config import RepoConfig
from liferaft.format.envelope import Envelope
from liferaft.format.keyfile import KeyRecord
from liferaft.format.session import SessionRecord
from liferaft.format.snapshot import Snapshot
from tests.format import records

VECTORS = Path(__file__).parent / "vectors"


@pytest.mark.parametrize("name", sorted(records.VECTORS))
def test_golden_bytes(name: str) -> None:
    want = (VECTORS / f"{name}.hex").read_text().strip()
    assert records.VECTORS[name].hex() == want


def test_records_round_trip() -> None:
    assert RepoConfig.from_bytes(records.CONFIG.to_bytes()) == records.CONFIG
    assert KeyRecord.from_bytes(records.KEY.to_bytes()) == records.KEY
    assert Envelope.from_bytes(records.ENVELOPE.to_bytes()) == records.ENVELOPE
    assert pack_fmt.decode_footer(pack_fmt.encode_footer(records.FOOTER)) == records.FOOTER
    packs, entries = index_fmt.rows(index_fmt.encode(INDEX_MAGIC, records.INDEX), INDEX_MAGIC)
    assert sorted(records.INDEX) == [(cid, index_fmt.Location(packs[n], *rest)) for cid, n, *rest in entries]
    assert decode_piece(records.VECTORS["chunkmap_piece"]) == records.PIECE
    assert Snapshot.from_bytes(records.SNAPSHOT.to_bytes()) == records.SNAPSHOT
    assert SessionRecord.from_bytes(records.SESSION.to_bytes()) == records.SESSION


PARSERS: dict[str, Callable[[bytes], object]] = {
    "config": RepoConfig.from_bytes,
    "key": KeyRecord.from_bytes,
    "pack_footer": pack_fmt.decode_footer,
    "index_delta": lambda b: list(index_fmt.rows(b, INDEX_MAGIC)[1]),
    "chunkmap_piece": decode_piece,
    "snapshot": Snapshot.from_bytes,
    "session": SessionRecord.from_bytes,
}


def damaged(data: bytes) -> list[bytes]:
    return [data[:-1], data + b"\0", data[: len(data) // 2], bytes([data[0] ^ 1]) + data[1:], b""]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_parsers_reject_damage_with_format_error(name: str) -> None:
    """Every damaged form of each record raises FormatError: truncated, extended, halved, its
    first byte flipped, empty. (Nothing else: no IndexError, no ValueError, no silent parse.)"""
    parse = PARSERS[name]
    parse(records.VECTORS[name])  # the record itself parses
    for i, bad in enumerate(damaged(records.VECTORS[name])):
        with pytest.raises(FormatError):
            parse(bad)
            pytest.fail(f"damaged form {i} of {name} parsed")


def test_envelopes_and_index_bodies_reject_what_they_can_tell() -> None:
    """An envelope cannot tell a shortened ciphertext (the AEAD does); it rejects what is shorter
    than its header. An index body read lazily rejects a damaged entry when it reaches it."""
    env = records.VECTORS["envelope"]
    Envelope.from_bytes(env)
    for bad in (b"", env[:10]):
        with pytest.raises(FormatError):
            Envelope.from_bytes(bad)
    delta = records.VECTORS["index_delta"]
    entries_at = len(delta) - len(records.INDEX) * index_fmt.ENTRY.size
    swapped = delta[:entries_at] + delta[entries_at + index_fmt.ENTRY.size :][: index_fmt.ENTRY.size] + delta[entries_at:]
    swapped = swapped[: len(delta)]
    with pytest.raises(FormatError):
        list(index_fmt.rows(swapped, INDEX_MAGIC)[1])  # entries out of order
    with pytest.raises(FormatError):
        index_fmt.rows(delta[:-1], INDEX_MAGIC)
    with pytest.raises(FormatError):
        index_fmt.rows(delta, CACHE_MAGIC)
