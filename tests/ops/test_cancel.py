"""Cancellation tokens: another thread stops a backup, a restore or a verify between chunks;
nothing is committed, the partial target is gone, and the next run works."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import liferaft
from liferaft.errors import Interrupted
from liferaft.ops.cancel import Cancel
from liferaft.repo.repository import Repository
from tests.conftest import FAST_KDF

CHUNK = 256 * 1024


class CancelAt:
    """Progress that sets the token, from another thread, once `after` bytes were reported."""

    def __init__(self, cancel: Cancel, after: int) -> None:
        self.cancel, self.after, self.seen = cancel, after, 0

    def start(self, what: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        self.seen += nbytes
        if self.seen >= self.after and not self.cancel.is_set:
            t = threading.Thread(target=self.cancel.set, args=("stopped by the test",))
            t.start()
            t.join()

    def finish(self) -> None:
        pass


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Repository, Path]:
    src = tmp_path / "disk.img"
    src.write_bytes(os.urandom(64 * CHUNK))
    repo = liferaft.init_repository(str(tmp_path / "repo"), b"pw", chunk_size=CHUNK, cache_root=tmp_path / "cache", cost=FAST_KDF)
    return repo, src


def run_on_a_worker_thread(fn: object) -> BaseException | None:
    """Run fn() on another thread, as the daemon will; the exception it ended with."""
    got: list[BaseException] = []

    def body() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            got.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    return got[0] if got else None


def test_a_cancelled_backup_commits_nothing_and_the_next_one_works(setup: tuple[Repository, Path], tmp_path: Path) -> None:
    repo, src = setup
    cancel = Cancel()
    progress = CancelAt(cancel, 8 * CHUNK)
    exc = run_on_a_worker_thread(lambda: liferaft.backup(repo, str(src), provider="plain", progress=progress, cancel=cancel))
    assert isinstance(exc, Interrupted)
    assert progress.seen < 64 * CHUNK, "it stopped before the end"
    assert repo.snapshot_ids() == []
    assert liferaft.verify(repo, read_data=True).ok
    sid = liferaft.backup(repo, str(src), provider="plain").snapshot_id
    liferaft.restore(repo, sid, str(tmp_path / "out.img"), verify=True)
    assert (tmp_path / "out.img").read_bytes() == src.read_bytes()


def test_a_cancelled_restore_leaves_no_partial_file(setup: tuple[Repository, Path], tmp_path: Path) -> None:
    repo, src = setup
    sid = liferaft.backup(repo, str(src), provider="plain").snapshot_id
    cancel = Cancel()
    out = tmp_path / "out.img"
    progress = CancelAt(cancel, 4 * CHUNK)
    exc = run_on_a_worker_thread(lambda: liferaft.restore(repo, sid, str(out), progress=progress, cancel=cancel))
    assert isinstance(exc, Interrupted)
    assert not out.exists() and not list(tmp_path.glob("out.img*"))


def test_a_cancelled_verify_stops(setup: tuple[Repository, Path]) -> None:
    repo, src = setup
    liferaft.backup(repo, str(src), provider="plain")
    cancel = Cancel()
    cancel.set()
    with pytest.raises(Interrupted):
        liferaft.verify(repo, read_data=True, cancel=cancel)
