"""One fixed instance of every on-disk record, the inputs of the golden vectors."""

from __future__ import annotations

from liferaft.format import FLAG_META, FLAG_ZSTD, INDEX_MAGIC, ChunkId, PackId
from liferaft.format import index as index_fmt
from liferaft.format import pack as pack_fmt
from liferaft.format.chunkmap import encode_piece
from liferaft.format.config import RepoConfig
from liferaft.format.envelope import Envelope
from liferaft.format.index import Location
from liferaft.format.keyfile import KdfParams, KeyRecord
from liferaft.format.session import SessionRecord
from liferaft.format.snapshot import Snapshot

A = ChunkId(bytes(range(32)))
B = ChunkId(bytes(range(32, 64)))
P = PackId(bytes(range(64, 96)))

CONFIG = RepoConfig(1, (), bytes(range(16)), 1 << 20, 32 << 20, 3)
KEY = KeyRecord(KdfParams(3, 65536, 2, bytes(16)), bytes(12), bytes(range(80)), "2026-11-27T00:00:00Z", "initial")
ENVELOPE = Envelope(bytes(range(16)), (7).to_bytes(12, "big"), b"ciphertext-and-tag")
FOOTER = [pack_fmt.PackEntry(A, 8, 100, 1 << 20, FLAG_ZSTD), pack_fmt.PackEntry(B, 108, 50, 4096 * 32 + 12, FLAG_META)]
INDEX = [(B, Location(P, 108, 50, 131084, FLAG_META)), (A, Location(P, 8, 100, 1 << 20, FLAG_ZSTD))]
PIECE = [A, ChunkId(bytes(32)), B, ChunkId(b"\xff" * 32)]
SNAPSHOT = Snapshot(
    hostname="host1",
    source="/dev/sdb",
    source_kind="device",
    time="2026-11-27T10:00:00Z",
    provider="plain",
    size=3 * (1 << 20) - 5,
    chunk_size=1 << 20,
    map_pieces=(A,),
    image_digest=bytes(32),
    stats={"new_bytes": 5},
)
SESSION = SessionRecord("host1", 4242, "backup /dev/sdb", 1700000000.5, 1700000060.25)

VECTORS: dict[str, bytes] = {
    "config": CONFIG.to_bytes(),
    "key": KEY.to_bytes(),
    "envelope": ENVELOPE.to_bytes(),
    "pack_footer": pack_fmt.encode_footer(FOOTER),
    "pack_trailer": pack_fmt.trailer(1234),
    "index_delta": index_fmt.encode(INDEX_MAGIC, INDEX),
    "chunkmap_piece": encode_piece(PIECE),
    "snapshot": SNAPSHOT.to_bytes(),
    "session": SESSION.to_bytes(),
}
