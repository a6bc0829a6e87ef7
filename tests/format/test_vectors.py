"""Golden bytes for every on-disk record: a change to any of them is a format change and must
come with a FORMAT_VERSION bump and an update of docs/design.md."""

from __future__ import annotations

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
    table = index_fmt.decode(index_fmt.encode(INDEX_MAGIC, records.INDEX), INDEX_MAGIC)
    assert sorted(records.INDEX) == [table.location(i) for i in range(len(table.entries))]
    assert decode_piece(records.VECTORS["chunkmap_piece"]) == records.PIECE
    assert Snapshot.from_bytes(records.SNAPSHOT.to_bytes()) == records.SNAPSHOT
    assert SessionRecord.from_bytes(records.SESSION.to_bytes()) == records.SESSION


@pytest.mark.parametrize(
    "parse",
    [
        RepoConfig.from_bytes,
        KeyRecord.from_bytes,
        Envelope.from_bytes,
        pack_fmt.decode_footer,
        lambda b: index_fmt.decode(b, INDEX_MAGIC),
        lambda b: index_fmt.decode(b, CACHE_MAGIC),
        decode_piece,
        Snapshot.from_bytes,
        SessionRecord.from_bytes,
        pack_fmt.split,
    ],
)
@pytest.mark.parametrize("name", sorted(records.VECTORS))
def test_parsers_reject_damage_with_format_error(parse, name: str) -> None:  # type: ignore[no-untyped-def]
    """Truncated, extended or bit-flipped records raise FormatError (or parse to the same kind of
    record, for the envelope, which cannot tell), never anything else."""
    data = records.VECTORS[name]
    for bad in (data[:-1], data + b"\0", data[: len(data) // 2], bytes([data[0] ^ 1]) + data[1:], b""):
        try:
            parse(bad)
        except FormatError:
            pass
