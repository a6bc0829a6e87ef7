"""The repository over store stacks whose faults fire, and with several writers at once:
backups commit, restores equal the source byte for byte, verify --read-data passes."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import liferaft
from liferaft.repo import repository as repository_mod
from liferaft.repo import writer as writer_mod
from liferaft.repo.repository import Repository
from liferaft.store.base import Store
from liferaft.store.faults import FaultStore, LaggingListStore
from liferaft.store.local import LocalStore
from liferaft.store.retry import RetryStore
from tests.conftest import FAST_KDF, PASSWORD, PYTHON

CHUNK = 256 * 1024


@pytest.fixture(autouse=True)
def small_packs_and_deltas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packs of 4 chunks and index deltas of 8 blobs: a run of a few MiB writes many of each."""
    monkeypatch.setattr(repository_mod, "PACK_SIZE_DEFAULT", 4 * CHUNK)
    monkeypatch.setattr(writer_mod, "PART_ENTRIES", 8)


def make_source(path: Path, chunks: int, seed: int) -> None:
    """Mostly unique chunks, some zero, some repeated (dedup within a run)."""
    rnd = __import__("random").Random(seed)
    with open(path, "wb") as f:
        for i in range(chunks):
            f.write(bytes(CHUNK) if i % 7 == 3 else (b"%d" % (i % 5)) * (CHUNK // 2) if i % 11 == 0 else rnd.randbytes(CHUNK))


def change(path: Path, seed: int) -> None:
    rnd = __import__("random").Random(seed)
    with open(path, "r+b") as f:
        for i in range(0, path.stat().st_size // CHUNK, 3):
            f.seek(i * CHUNK + 1000)
            f.write(rnd.randbytes(5000))


STACKS: dict[str, Callable[[Path], Store]] = {
    "retry(transient faults(local))": lambda p: RetryStore(FaultStore(LocalStore(p), transient_every=5), first_delay=0),
    "lagging listing(local)": lambda p: LaggingListStore(LocalStore(p)),
}


def faults_fired(store: Store) -> int:
    while True:
        if isinstance(store, FaultStore):
            return store.faults
        if isinstance(store, LaggingListStore):
            return store.hidden
        store = store.inner  # type: ignore[attr-defined]


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_backup_restore_verify_over_a_faulty_stack(stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = STACKS[stack](tmp_path / "repo")
    repo = Repository.init(store, b"pw", tmp_path / "cache", chunk_size=CHUNK, cost=FAST_KDF)
    src = tmp_path / "disk.img"
    make_source(src, 60, seed=1)
    first = liferaft.backup(repo, str(src), provider="plain")
    image_one = src.read_bytes()
    change(src, seed=2)
    second = liferaft.backup(repo, str(src), provider="plain")
    for result, want in ((first, image_one), (second, src.read_bytes())):
        out = tmp_path / f"{result.snapshot_id[:8]}.img"
        liferaft.restore(repo, result.snapshot_id, str(out), verify=True)
        assert out.read_bytes() == want
    check = liferaft.verify(repo, read_data=True)
    assert check.ok, check.errors
    assert check.snapshots == 2
    assert faults_fired(store) > 0, "the stack's faults must have fired"
    assert len(list(store.list("index"))) >= 4, "several index deltas per run"
    repo.close()


def test_threads_backing_up_at_once_share_one_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers in one process, each with its own session, write index deltas (every 8 blobs)
    and refresh the one cache file while the others do too."""
    liferaft.init_repository(str(tmp_path / "repo"), b"pw", chunk_size=CHUNK, cache_root=tmp_path / "cache", cost=FAST_KDF)
    sources = [tmp_path / f"disk{i}.img" for i in range(4)]
    for i, s in enumerate(sources):
        make_source(s, 48, seed=10 + i)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(sources))

    def run(src: Path) -> None:
        try:
            with liferaft.open_repository(str(tmp_path / "repo"), b"pw", tmp_path / "cache") as repo:
                barrier.wait()
                liferaft.backup(repo, str(src), provider="plain", workers=2)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    _restore_each(tmp_path, sources, b"pw")


def test_processes_backing_up_at_once(tmp_path: Path) -> None:
    """N liferaft processes back up N disks into one repository with one cache folder at once."""
    repo = tmp_path / "repo"
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = [PYTHON, "-m", "liferaft"]
    liferaft.init_repository(str(repo), PASSWORD.encode(), chunk_size=CHUNK, cost=FAST_KDF).close()  # its small packs
    sources = [tmp_path / f"disk{i}.img" for i in range(4)]
    for i, s in enumerate(sources):
        make_source(s, 64, seed=20 + i)
    procs = [
        subprocess.Popen([*cmd, "backup", "-q", str(s), "--repo", str(repo)], env=env, stderr=subprocess.PIPE) for s in sources
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    with liferaft.open_repository(str(repo), PASSWORD.encode(), tmp_path / "cache") as r:
        assert len(r.snapshot_ids()) == len(sources)
    _restore_each(tmp_path, sources, PASSWORD.encode())


def _restore_each(tmp_path: Path, sources: list[Path], password: bytes) -> None:
    with liferaft.open_repository(str(tmp_path / "repo"), password, tmp_path / "cache") as repo:
        rows = {row.source: row.snapshot_id for row in liferaft.list_snapshots(repo)}
        assert sorted(rows) == sorted(str(s) for s in sources)
        for src in sources:
            out = tmp_path / "out.img"
            liferaft.restore(repo, rows[str(src)], str(out), force=True, verify=True)
            assert out.read_bytes() == src.read_bytes(), f"{src} did not restore as it was"
        check = liferaft.verify(repo, read_data=True)
        assert check.ok, check.errors
