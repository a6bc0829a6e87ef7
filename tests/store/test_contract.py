"""The store contract (store/base.py), run on every store and wrapper stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liferaft.errors import ObjectMissing, RepositoryFull, StoreError, StoreTransient
from liferaft.store.base import Store
from liferaft.store.faults import FaultStore
from liferaft.store.local import LocalStore
from liferaft.store.memory import MemoryStore
from liferaft.store.open import open_store
from liferaft.store.retry import RetryStore

STACKS: dict[str, Callable[[Path], Store]] = {
    "local": lambda p: LocalStore(p),
    "memory": lambda p: MemoryStore(),
    "retry(local)": lambda p: RetryStore(LocalStore(p), first_delay=0),
    "faults(memory), no fault due": lambda p: FaultStore(MemoryStore(), 10**9, StoreError("never")),
    "open(file://)": lambda p: open_store(f"file://{p}"),
}


@pytest.fixture(params=sorted(STACKS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = STACKS[request.param](tmp_path / "store")
    yield s
    s.close()


def test_put_get_replace(store: Store) -> None:
    store.put("packs/ab/abcd", b"hello")
    assert store.get("packs/ab/abcd") == b"hello"
    store.put("packs/ab/abcd", memoryview(b"world!"))
    assert store.get("packs/ab/abcd") == b"world!"
    assert store.size("packs/ab/abcd") == 6


def test_get_range_exact_or_error(store: Store) -> None:
    store.put("x/y", bytes(range(100)))
    assert store.get_range("x/y", 10, 5) == bytes(range(10, 15))
    with pytest.raises(StoreError):
        store.get_range("x/y", 98, 5)  # a short read is an error


def test_missing(store: Store) -> None:
    with pytest.raises(ObjectMissing):
        store.get("snapshots/none")
    with pytest.raises(ObjectMissing):
        store.get_range("snapshots/none", 0, 1)
    with pytest.raises(ObjectMissing):
        store.size("snapshots/none")
    store.delete("snapshots/none")  # not an error


def test_list_is_recursive_and_complete(store: Store) -> None:
    names = {"packs/00/0011", "packs/ff/ff22", "index/abc"}
    for n in names:
        store.put(n, b"1")
    assert set(store.list("packs")) == {"packs/00/0011", "packs/ff/ff22"}
    assert set(store.list("index")) == {"index/abc"}
    assert list(store.list("snapshots")) == []
    store.delete("packs/00/0011")
    assert set(store.list("packs")) == {"packs/ff/ff22"}


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "a//b", "UPPER", "a/", ""])
def test_names_are_checked(store: Store, bad: str) -> None:
    with pytest.raises(StoreError):
        store.put(bad, b"x")


def test_retry_retries_transient_only() -> None:
    calls = []

    class Flaky(MemoryStore):
        def get(self, name: str) -> bytes:
            calls.append(name)
            if len(calls) < 3:
                raise StoreTransient("timeout")
            return super().get(name)

    inner = Flaky()
    inner.put("a", b"1")
    assert RetryStore(inner, first_delay=0).get("a") == b"1"
    assert len(calls) == 3
    with pytest.raises(ObjectMissing):
        RetryStore(inner, first_delay=0).get("missing")


def test_local_disk_full_leaves_no_partial_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    store = LocalStore(tmp_path)
    real_pwrite = os.pwrite

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(RepositoryFull):
        store.put("packs/aa/aabb", b"x" * 100)
    with pytest.raises(RepositoryFull):
        store.put("packs/aa/aacc", b"x" * (8 << 20))  # the O_DIRECT path too
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert list(store.list("packs")) == []
