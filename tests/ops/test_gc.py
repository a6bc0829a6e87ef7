"""GC never loses what a snapshot or a running backup references; it reclaims the rest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import liferaft
from liferaft.crypto.aead import Sealer
from liferaft.errors import LeaseHeld, MaintenanceAborted
from liferaft.ops.gc import gc
from liferaft.repo import names
from liferaft.repo.repository import Repository
from liferaft.repo.sessions import MAINTENANCE, Lease
from liferaft.store.base import ObjectInfo, Wrapper
from tests.conftest import FAST_KDF

CHUNK = 256 * 1024


def disk(path: Path, chunks: int, seed: int) -> Path:
    rnd = __import__("random").Random(seed)
    path.write_bytes(b"".join(rnd.randbytes(CHUNK) for _ in range(chunks)))
    return path


def files(repo_dir: Path, folder: str) -> set[str]:
    return {str(p.relative_to(repo_dir)) for p in (repo_dir / folder).rglob("*") if p.is_file()}


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def restores(repo: Repository, sid: str, want: Path, tmp_path: Path) -> bool:
    out = tmp_path / "check.img"
    liferaft.restore(repo, sid, str(out), force=True, verify=True)
    return out.read_bytes() == want.read_bytes()


def assert_reclaimed(repo: Repository, keep: str, src: Path, tmp_path: Path) -> None:
    """The repository holds at most 10% more than a fresh one holding only src's backup, keep
    restores as src, and verify --read-data finds every pack referenced and intact."""
    fresh = liferaft.init_repository(str(tmp_path / "fresh"), b"pw", chunk_size=CHUNK, cache_root=tmp_path / "c2", cost=FAST_KDF)
    liferaft.backup(fresh, str(src), provider="plain")
    assert size_of(tmp_path / "repo" / "packs") <= 1.1 * size_of(tmp_path / "fresh" / "packs")
    assert restores(repo, keep, src, tmp_path)
    check = liferaft.verify(repo, read_data=True)
    assert check.ok and check.unreferenced_packs == 0, check.errors


class At:
    """Progress that runs `action` once, when `after` bytes were reported."""

    def __init__(self, after: int, action: Callable[[], None]) -> None:
        self.after, self.action, self.seen, self.done = after, action, 0, False

    def start(self, what: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        self.seen += nbytes
        if self.seen >= self.after and not self.done:
            self.done = True
            self.action()

    def finish(self) -> None:
        pass


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = liferaft.init_repository(str(tmp_path / "repo"), b"pw", chunk_size=CHUNK, cache_root=tmp_path / "cache", cost=FAST_KDF)
    yield r
    r.close()


def test_forget_then_gc_twice_reclaims_the_space(repo: Repository, tmp_path: Path) -> None:
    a, b = disk(tmp_path / "a.img", 48, 1), disk(tmp_path / "b.img", 48, 2)
    liferaft.backup(repo, str(a), provider="plain")
    keep = liferaft.backup(repo, str(b), provider="plain").snapshot_id
    repo.store.delete(names.snapshot(liferaft.list_snapshots(repo)[0].snapshot_id))  # forget a's
    first = gc(repo, safety_margin=0)
    assert first.deleted == 0 and first.condemned > 0  # condemned, never deleted in the same run
    assert restores(repo, keep, b, tmp_path)
    second = gc(repo, safety_margin=0)
    assert second.deleted == first.condemned and second.condemned == 0
    assert second.deltas_after == 1
    assert_reclaimed(repo, keep, b, tmp_path)
    assert files(tmp_path / "repo", "condemned") == set()


def test_a_pack_condemned_within_the_safety_margin_waits(repo: Repository, tmp_path: Path) -> None:
    a = disk(tmp_path / "a.img", 8, 3)
    sid = liferaft.backup(repo, str(a), provider="plain").snapshot_id
    repo.store.delete(names.snapshot(sid))
    first = gc(repo, safety_margin=0)
    waited = gc(repo, safety_margin=3600)  # the record is younger than an hour
    assert first.condemned > 0 and waited.deleted == 0 and waited.waiting == first.condemned and waited.condemned == 0
    assert gc(repo, safety_margin=0).deleted == first.condemned


def test_a_backup_never_dedups_against_condemned_packs(repo: Repository, tmp_path: Path) -> None:
    """The chunks of a forgotten snapshot are condemned; the same disk backed up again must not
    lean on them, since the next run deletes them while that backup runs."""
    a = disk(tmp_path / "a.img", 24, 4)
    old = liferaft.backup(repo, str(a), provider="plain").snapshot_id
    repo.store.delete(names.snapshot(old))
    assert gc(repo, safety_margin=0).condemned > 0
    deleted: list[int] = []
    progress = At(12 * CHUNK, lambda: deleted.append(gc(repo, safety_margin=0).deleted))
    again = liferaft.backup(repo, str(a), provider="plain", progress=progress)
    assert deleted and deleted[0] > 0, "the condemned packs went while the backup ran"
    assert again.new_chunks == 24 and again.map_stored_bytes > 0  # all stored anew, its map piece too
    assert gc(repo, safety_margin=0).deleted == 0  # what the new snapshot holds is live
    assert restores(repo, again.snapshot_id, a, tmp_path)
    assert liferaft.verify(repo, read_data=True).ok


def test_a_backup_reusing_chunks_of_a_snapshot_forgotten_while_gc_marks_keeps_them(repo: Repository, tmp_path: Path) -> None:
    """PSA-2025-00019: a backup deduplicates against a snapshot's chunks; the snapshot is then
    forgotten and GC runs (condemns, then would delete) while the backup is still running. The
    backup's session was live at the condemnation, so nothing it may reference goes."""
    a = disk(tmp_path / "a.img", 24, 5)
    old = liferaft.backup(repo, str(a), provider="plain").snapshot_id
    runs: list[tuple[int, int]] = []

    def forget_and_collect() -> None:
        repo.store.delete(names.snapshot(old))
        for _ in range(2):
            r = gc(repo, safety_margin=0)
            runs.append((r.condemned, r.deleted))

    again = liferaft.backup(repo, str(a), provider="plain", progress=At(12 * CHUNK, forget_and_collect))
    assert again.new_chunks == 0  # it deduplicated against the old snapshot's chunks
    assert runs[0][0] > 0 and runs[1][1] == 0, runs  # condemned, but not deleted while the backup lived
    after = gc(repo, safety_margin=0)
    assert after.deleted == 0  # the new snapshot references them: they are live again
    assert restores(repo, again.snapshot_id, a, tmp_path)
    assert liferaft.verify(repo, read_data=True).ok


def test_two_gc_runs_at_once_and_a_stale_lease(repo: Repository) -> None:
    holder = Lease(repo.store, Sealer(repo.master), "gc", exclusive=(MAINTENANCE, repo.opener))
    with pytest.raises(LeaseHeld, match="liferaft gc"):
        gc(repo)
    holder.end()
    gc(repo)


class HidesAPack(Wrapper):
    """A listing of packs that leaves one out (an incomplete LIST)."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        found = list(self.inner.list(prefix))
        return iter(found[1:] if prefix == names.PACKS else found)


def test_an_incomplete_listing_stops_gc_before_it_deletes_anything(repo: Repository, tmp_path: Path) -> None:
    a, b = disk(tmp_path / "a.img", 24, 6), disk(tmp_path / "b.img", 24, 7)
    liferaft.backup(repo, str(a), provider="plain")
    keep = liferaft.backup(repo, str(b), provider="plain").snapshot_id
    repo.store.delete(names.snapshot(liferaft.list_snapshots(repo)[0].snapshot_id))
    gc(repo, safety_margin=0)
    before = files(tmp_path / "repo", "packs") | files(tmp_path / "repo", "index")
    honest = repo.store
    repo.store = HidesAPack(honest)
    with pytest.raises(MaintenanceAborted, match="nothing was deleted"):
        gc(repo, safety_margin=0)
    repo.store = honest
    assert files(tmp_path / "repo", "packs") | files(tmp_path / "repo", "index") == before
    assert restores(repo, keep, b, tmp_path)


def test_dry_run_writes_nothing(repo: Repository, tmp_path: Path) -> None:
    a = disk(tmp_path / "a.img", 8, 8)
    sid = liferaft.backup(repo, str(a), provider="plain").snapshot_id
    repo.store.delete(names.snapshot(sid))
    everything = {str(p) for p in (tmp_path / "repo").rglob("*")}
    r = gc(repo, safety_margin=0, dry_run=True)
    assert r.condemned > 0 and {str(p) for p in (tmp_path / "repo").rglob("*")} == everything
    assert os.path.isdir(tmp_path / "repo" / "packs")


def test_a_mostly_unreferenced_pack_is_repacked_and_its_space_freed(repo: Repository, tmp_path: Path) -> None:
    """Three quarters of a disk change between two backups; the first is forgotten. Its pack
    still holds the unchanged quarter, so deleting garbage alone frees nothing: the live
    quarter is copied into a new pack, and the old pack goes a run later."""
    a = disk(tmp_path / "a.img", 32, 11)
    liferaft.backup(repo, str(a), provider="plain")
    rnd = __import__("random").Random(12)
    with open(a, "r+b") as f:
        for i in range(32):
            if i % 4:
                f.seek(i * CHUNK)
                f.write(rnd.randbytes(CHUNK))
    keep = liferaft.backup(repo, str(a), provider="plain").snapshot_id
    repo.store.delete(names.snapshot(liferaft.list_snapshots(repo)[0].snapshot_id))
    first = gc(repo, safety_margin=0)
    assert first.repacked == 1 and first.repacked_bytes > 0 and first.deleted == 0
    assert restores(repo, keep, a, tmp_path)
    second = gc(repo, safety_margin=0)
    assert second.deleted == 1 and second.repacked == 0
    assert_reclaimed(repo, keep, a, tmp_path)
