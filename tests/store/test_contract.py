"""The store contract (store/base.py), run on every store and on wrapper stacks whose faults
really fire: transient failures (before a call, and after a write whose reply was lost) under
the retry that ``open_store`` composes, and a listing that lags behind the newest writes. Racing
writers (create, replace) run against each stack too."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liferaft.errors import ObjectMissing, RepositoryFull, StoreError, StoreTransient
from liferaft.store.base import ObjectInfo, Store, Wrapper
from liferaft.store.faults import FaultStore, LaggingListStore
from liferaft.store.local import LocalStore
from liferaft.store.memory import MemoryStore
from liferaft.store.open import StoreOptions, open_store
from liferaft.store.retry import RetryStore
from liferaft.store.s3 import S3Store

NO_WAIT = StoreOptions(retry_first_delay=0)


def faulty(inner: Store) -> Store:
    """Every third call fails transiently; the retry in front must hide all of it."""
    return RetryStore(FaultStore(inner, transient_every=3), first_delay=0)


STACKS: dict[str, Callable[[Path], Store]] = {
    "local": lambda p: LocalStore(p),
    "memory": lambda p: MemoryStore(),
    "open(file://)": lambda p: open_store(f"file://{p}", NO_WAIT),
    "retry(transient faults(local))": lambda p: faulty(LocalStore(p)),
    "retry(transient faults(memory))": lambda p: faulty(MemoryStore()),
    "lagging listing(local)": lambda p: LaggingListStore(LocalStore(p)),
}


def listed(store: Store, prefix: str) -> dict[str, ObjectInfo]:
    """What a listing shows, allowing it to lag once behind the newest writes (as the contract
    does): the union of two listings."""
    return {o.name: o for _ in range(2) for o in store.list(prefix)}


S3_STACKS: dict[str, Callable[[str], Store]] = {
    "s3 (Ceph RGW)": lambda bucket: S3Store(bucket, "repo"),
    "open(s3://)": lambda bucket: open_store(f"s3://{bucket}/some/prefix", NO_WAIT),
    "retry(transient faults(s3))": lambda bucket: faulty(S3Store(bucket)),
}


@pytest.fixture(params=sorted(STACKS) + sorted(S3_STACKS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param in S3_STACKS:
        s = S3_STACKS[request.param](request.getfixturevalue("bucket"))
    else:
        s = STACKS[request.param](tmp_path / "store")
    s.prepare()
    yield s
    s.close()


def test_put_get_replace(store: Store) -> None:
    store.put("packs/ab/abcd", b"hello")
    assert store.get("packs/ab/abcd") == b"hello"
    store.put("packs/ab/abcd", memoryview(b"world!"))
    assert store.get("packs/ab/abcd") == b"world!"
    info = store.stat("packs/ab/abcd")
    assert (info.name, info.size) == ("packs/ab/abcd", 6)


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
        store.stat("snapshots/none")
    store.delete("snapshots/none")  # not an error


def test_list_is_recursive_and_complete_with_sizes_and_times(store: Store) -> None:
    objects = {"packs/00/0011": b"1", "packs/ff/ff22": b"22", "index/abc": b"333"}
    for n, data in objects.items():
        store.put(n, data)
    packs = listed(store, "packs")
    assert set(packs) == {"packs/00/0011", "packs/ff/ff22"}
    assert [packs[n].size for n in sorted(packs)] == [1, 2]
    assert all(o.mtime == store.stat(o.name).mtime for o in packs.values())
    assert set(listed(store, "index")) == {"index/abc"}
    assert listed(store, "snapshots") == {}
    store.delete("packs/00/0011")
    assert set(listed(store, "packs")) == {"packs/ff/ff22"}  # a deleted object never lingers


def test_mtime_is_the_time_of_the_last_write(store: Store) -> None:
    store.put("sessions/a", b"1")
    first = store.stat("sessions/a").mtime
    store.put("sessions/a", b"2")
    assert store.stat("sessions/a").mtime >= first


def test_create_if_absent(store: Store) -> None:
    assert store.create("sessions/maintenance", b"mine")
    assert not store.create("sessions/maintenance", b"theirs")
    assert store.get("sessions/maintenance") == b"mine"
    store.delete("sessions/maintenance")
    assert store.create("sessions/maintenance", b"next")


def test_create_is_exclusive_among_racing_writers(store: Store) -> None:
    won: list[int] = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        if store.create("sessions/maintenance", str(i).encode()):
            won.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert store.get("sessions/maintenance") == str(won[0]).encode()


def test_readers_see_whole_objects_while_a_writer_replaces_them(store: Store) -> None:
    versions = [bytes([i]) * 100_000 for i in range(20)]
    store.put("packs/aa/aa", versions[0])
    stop = threading.Event()

    def writer() -> None:
        for v in versions[1:]:
            store.put("packs/aa/aa", v)
        stop.set()

    t = threading.Thread(target=writer)
    t.start()
    seen = 0
    while not stop.is_set() or seen == 0:
        data = store.get("packs/aa/aa")
        assert data in versions  # never torn
        seen += 1
    t.join()


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "a//b", "UPPER", "a/", ""])
def test_names_are_checked(store: Store, bad: str) -> None:
    with pytest.raises(StoreError):
        store.put(bad, b"x")


def test_the_faults_fire_and_the_retry_absorbs_them(tmp_path: Path) -> None:
    faults = FaultStore(LocalStore(tmp_path), transient_every=2)
    store = RetryStore(faults, first_delay=0)
    for i in range(10):
        store.put(f"packs/aa/{i}", bytes([i]) * 10)
    assert sorted(o.name for o in store.list("packs")) == sorted(f"packs/aa/{i}" for i in range(10))
    assert all(store.get(f"packs/aa/{i}") == bytes([i]) * 10 for i in range(10))
    assert store.create("sessions/x", b"1")  # its reply may be lost: the retry finds its own object
    assert faults.faults >= 10
    with pytest.raises(StoreTransient):  # unwrapped, the same faults reach the caller
        for _ in range(3):
            faults.get("packs/aa/0")
    with pytest.raises(ObjectMissing):  # not transient: never retried
        store.get("packs/none")


def test_retry_gives_up_at_its_attempts(tmp_path: Path) -> None:
    faults = FaultStore(MemoryStore(), transient_every=1)
    with pytest.raises(StoreTransient):
        RetryStore(faults, attempts=4, first_delay=0).get("a")
    assert faults.calls == 4


def test_a_lost_create_reply_is_not_taken_for_another_holder() -> None:
    class LostReply(Wrapper):
        lost = 1

        def create(self, name: str, data: bytes) -> bool:
            done = self.inner.create(name, data)
            if self.lost:
                self.lost -= 1
                raise StoreTransient(detail="the reply was lost")
            return done

    inner = MemoryStore()
    store = RetryStore(LostReply(inner), first_delay=0)
    assert store.create("sessions/m", b"mine")  # done, its reply lost, retried: found as ours
    assert inner.get("sessions/m") == b"mine"
    assert not store.create("sessions/m", b"other")


def test_local_transient_errors_are_transient_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network filesystem's stale handle or timeout is StoreTransient, which open_store's
    retry waits out; the local store on its own passes it on."""
    store = open_store(str(tmp_path), NO_WAIT)
    store.put("x/y", b"data")
    real = os.pread
    failures = [errno.ESTALE, errno.ETIMEDOUT]

    def flaky(fd: int, n: int, offset: int) -> bytes:
        if failures:
            raise OSError(failures.pop(0), os.strerror(errno.ESTALE))
        return real(fd, n, offset)

    monkeypatch.setattr(os, "pread", flaky)
    assert store.get_range("x/y", 0, 4) == b"data"
    assert failures == []
    failures.append(errno.ETIMEDOUT)
    with pytest.raises(StoreTransient):
        LocalStore(tmp_path).get_range("x/y", 0, 4)


def test_lagging_listing_hides_new_objects_once(tmp_path: Path) -> None:
    store = LaggingListStore(LocalStore(tmp_path))
    store.put("index/a", b"1")
    assert list(store.list("index")) == []
    assert [o.name for o in store.list("index")] == ["index/a"]
    assert store.hidden == 1


def test_local_disk_full_leaves_no_partial_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)
    real_pwrite = os.pwrite

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(RepositoryFull):
        store.put("packs/aa/aabb", b"x" * 100)
    with pytest.raises(RepositoryFull):
        store.put("packs/aa/aacc", b"x" * (8 << 20))  # the O_DIRECT path too
    with pytest.raises(RepositoryFull):
        store.create("sessions/maintenance", b"x")
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert list(store.list("packs")) == []


def test_local_listing_fails_rather_than_skipping_an_unreadable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)
    store.put("packs/aa/1", b"1")
    store.put("packs/bb/2", b"2")
    real = os.scandir

    def broken(path: object) -> object:
        if str(path).endswith("/bb"):
            raise OSError(errno.EIO, "Input/output error")
        return real(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", broken)
    with pytest.raises(StoreError):
        list(store.list("packs"))


def test_sync_after_an_object_was_put_and_deleted(store: Store) -> None:
    """A lease put and deleted before any sync (a run cancelled at once) must not fail the next
    sync of the same store."""
    store.put("sessions/a", b"1")
    store.delete("sessions/a")
    store.put("packs/aa/b", b"2")
    store.sync()
    assert listed(store, "sessions") == {}
    assert store.get("packs/aa/b") == b"2"
