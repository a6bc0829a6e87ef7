"""The local index cache: merged from deltas, refreshed incrementally, rebuilt when stale or damaged."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def test_an_older_cache_renamed_in_over_a_newer_one_is_merged_not_trusted(tmp_path: Path) -> None:
    """Two processes refresh one cache: B merges delta 3 and writes; A's older cache (deltas 1
    and 2) is renamed in on top of it afterwards. The cache in place must not be taken to hold
    delta 3: its chunks are found, not reported missing."""
    master = keys.MasterKey.generate()
    store, sealer, opener = MemoryStore(), Sealer(master), Opener(master)
    one, two = _delta(store, sealer, "d1", 100), _delta(store, sealer, "d2", 100)
    open_index(store, opener, tmp_path).close()
    older = (tmp_path / "index").read_bytes()  # what process A built
    three = _delta(store, sealer, "d3", 100)
    open_index(store, opener, tmp_path).close()  # process B merges delta 3 and writes it
    (tmp_path / "index.a").write_bytes(older)
    os.replace(tmp_path / "index.a", tmp_path / "index")  # A's rename lands last
    idx = open_index(store, opener, tmp_path)
    assert all(idx.lookup(k) == v for k, v in {**one, **two, **three}.items())
    assert idx.deltas() == {names.index(n) for n in ("d1", "d2", "d3")}
    idx.close()


def test_refresh_finds_a_delta_written_after_the_index_was_opened(tmp_path: Path) -> None:
    master = keys.MasterKey.generate()
    store, sealer, opener = MemoryStore(), Sealer(master), Opener(master)
    first = _delta(store, sealer, "d1", 50)
    idx = open_index(store, opener, tmp_path)
    later = _delta(store, sealer, "d2", 50)
    assert all(idx.lookup(k) is None for k in later)
    assert idx.refresh() and not idx.refresh()
    assert all(idx.lookup(k) == v for k, v in {**first, **later}.items())
    idx.close()


def test_a_cache_damaged_inside_is_rebuilt_on_request(tmp_path: Path) -> None:
    master = keys.MasterKey.generate()
    store, sealer, opener = MemoryStore(), Sealer(master), Opener(master)
    items = _delta(store, sealer, "d1", 300)
    open_index(store, opener, tmp_path).close()
    path = tmp_path / "index"
    data = bytearray(path.read_bytes())
    data[100:4000] = bytes(3900)  # entries zeroed: the file still parses
    path.write_bytes(bytes(data))
    idx = open_index(store, opener, tmp_path)
    lost = [k for k in items if idx.lookup(k) is None]
    assert lost, "the damage must hide some entries"
    assert idx.refresh(rebuild=True)
    assert all(idx.lookup(k) == v for k, v in items.items())
    idx.close()


def test_many_deltas_merge_in_bounded_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from liferaft.repo import index as index_mod

    master = keys.MasterKey.generate()
    store, sealer, opener = MemoryStore(), Sealer(master), Opener(master)
    everything: dict[bytes, fmt.Location] = {}
    for i in range(12):
        everything |= _delta(store, sealer, f"d{i:02d}", 200)
    monkeypatch.setattr(index_mod, "BATCH_BYTES", 3 * 200 * fmt.ENTRY.size)  # about 3 deltas a pass
    passes: list[int] = []
    real = index_mod._write_cache

    def counted(path: Path, rows: Iterator[index_mod.Row], deltas: frozenset[str]) -> None:
        passes.append(len(deltas))
        real(path, rows, deltas)

    monkeypatch.setattr(index_mod, "_write_cache", counted)
    idx = open_index(store, opener, tmp_path)
    assert len(passes) >= 3 and passes == sorted(passes) and passes[-1] == 12
    assert len(idx) == 2400 and all(idx.lookup(k) == v for k, v in everything.items())
    idx.close()
