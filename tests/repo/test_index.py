"""The local index cache: merged from deltas, refreshed incrementally, rebuilt when stale or damaged."""

from __future__ import annotations

import os
from pathlib import Path

from liferaft.crypto import keys
from liferaft.crypto.aead import Opener, Sealer
from liferaft.format import INDEX_MAGIC, ChunkId, PackId
from liferaft.format import index as fmt
from liferaft.repo import names
from liferaft.repo.index import INDEX_AD, open_index
from liferaft.store.memory import MemoryStore


def _delta(store: MemoryStore, sealer: Sealer, name: str, n: int) -> dict[bytes, fmt.Location]:
    pack = PackId(os.urandom(32))
    items = {os.urandom(32): fmt.Location(pack, 8 + i * 10, 10, 100, 1) for i in range(n)}
    body = fmt.encode(INDEX_MAGIC, [(ChunkId(k), v) for k, v in items.items()])
    store.put(names.index(name), sealer.seal(body, INDEX_AD))
    return items


def test_merge_refresh_and_rebuild(tmp_path: Path) -> None:
    master = keys.MasterKey.generate()
    store, sealer, opener = MemoryStore(), Sealer(master), Opener(master)
    a = _delta(store, sealer, "aa", 500)
    idx = open_index(store, opener, tmp_path)
    assert len(idx) == 500 and all(idx.lookup(k) == v for k, v in a.items())
    idx.close()
    b = _delta(store, sealer, "bb", 300)
    idx = open_index(store, opener, tmp_path)  # incremental merge
    assert len(idx) == 800
    assert all(idx.lookup(k) == v for k, v in {**a, **b}.items())
    assert idx.lookup(os.urandom(32)) is None
    idx.close()
    store.delete(names.index("aa"))  # a delta went away (compaction): rebuild, never keep stale rows
    idx = open_index(store, opener, tmp_path)
    assert len(idx) == 300 and all(idx.lookup(k) is None for k in a)
    idx.close()
    (tmp_path / "index").write_bytes(b"garbage")  # a damaged cache is rebuilt
    idx = open_index(store, opener, tmp_path)
    assert len(idx) == 300 and all(idx.lookup(k) == v for k, v in b.items())
    idx.close()


def test_empty_repository(tmp_path: Path) -> None:
    master = keys.MasterKey.generate()
    idx = open_index(MemoryStore(), Opener(master), tmp_path)
    assert len(idx) == 0 and idx.lookup(bytes(32)) is None
