"""Leases: ages by the store's clock; a session paused past its term never commits; one
maintenance lease at a time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from liferaft.crypto.aead import Sealer
from liferaft.errors import LeaseHeld, LeaseLost
from liferaft.format import ChunkId
from liferaft.format.settings import LEASE_TERM_S, RepoSettings
from liferaft.format.snapshot import Snapshot
from liferaft.repo import names
from liferaft.repo.repository import Repository
from liferaft.repo.sessions import MAINTENANCE, Lease, lapsed
from liferaft.repo.writer import BackupWriter
from liferaft.store.memory import MemoryStore
from tests.conftest import FAST_KDF


class Clock:
    """The store's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _repo(tmp_path: Path, clock: Clock) -> Repository:
    return Repository.init(MemoryStore(clock), b"pw", tmp_path / "cache", cost=FAST_KDF)


def _snapshot() -> Snapshot:
    return Snapshot("host", "/dev/x", "file", "2026-12-02T00:00:00.000000Z", "plain", 0, 1 << 20, (), bytes(32))


def _writer_with_data(repo: Repository) -> BackupWriter:
    writer = BackupWriter(repo, repo.open_index(), "backup /dev/x")
    for _ in range(3):
        data = os.urandom(100_000)
        writer.put(repo.ids.chunk_id(data), data)
    return writer


def test_a_session_paused_past_its_term_by_the_stores_clock_refuses_to_commit(tmp_path: Path) -> None:
    clock = Clock()
    repo = _repo(tmp_path, clock)
    writer = _writer_with_data(repo)
    clock.now += LEASE_TERM_S + 1  # SIGSTOP, a suspended laptop: the client saw no time pass
    with pytest.raises(LeaseLost, match="not renewed for 601 s"):
        writer.commit(_snapshot())
    writer.abort()
    assert repo.snapshot_ids() == []
    assert list(repo.store.list(names.INDEX)) == []  # not even its index delta
    assert list(repo.store.list(names.SESSIONS)) == []  # and its session object is gone


def test_the_clients_clock_is_not_what_ages_a_lease(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    repo = _repo(tmp_path, clock)
    writer = _writer_with_data(repo)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 10 * LEASE_TERM_S)  # a client clock set wrong
    clock.now += LEASE_TERM_S / 2  # within the term by the store's clock
    sid = writer.commit(_snapshot())
    assert repo.snapshot_ids() == [sid]


def test_a_session_whose_object_was_removed_refuses_to_commit(tmp_path: Path) -> None:
    repo = _repo(tmp_path, Clock())
    writer = _writer_with_data(repo)
    repo.store.delete(names.session(writer.sealer.session_id))  # maintenance took it for dead
    with pytest.raises(LeaseLost, match="removed"):
        writer.commit(_snapshot())
    writer.abort()
    assert repo.snapshot_ids() == []


def test_a_renewal_after_a_pause_marks_the_lease_lost_for_later_puts(tmp_path: Path) -> None:
    clock = Clock()
    repo = _repo(tmp_path, clock)
    writer = _writer_with_data(repo)
    clock.now += LEASE_TERM_S + 30
    writer.lease.renew()  # the renewal thread waking after the pause
    data = os.urandom(1000)
    with pytest.raises(LeaseLost):
        writer.put(ChunkId(repo.ids.chunk_id(data)), data)
    with pytest.raises(LeaseLost):
        writer.commit(_snapshot())  # its fresh renewal does not hide the gap
    writer.abort()


def test_one_maintenance_lease_at_a_time_and_a_lapsed_one_is_taken_over(tmp_path: Path) -> None:
    clock = Clock()
    repo = _repo(tmp_path, clock)
    first = Lease(repo.store, Sealer(repo.master), "gc", exclusive=(MAINTENANCE, repo.opener))
    with pytest.raises(LeaseHeld, match=r"'liferaft gc' on .*\(renewed 0 s ago\)"):
        Lease(repo.store, Sealer(repo.master), "gc", exclusive=(MAINTENANCE, repo.opener))
    clock.now += LEASE_TERM_S + 1  # the first holder died
    second = Lease(repo.store, Sealer(repo.master), "gc", exclusive=(MAINTENANCE, repo.opener))
    with pytest.raises(LeaseLost, match="took it over"):
        first.check()  # had it only been paused, it finds out before its next step
    second.check()
    second.end()
    first.end()
    assert list(repo.store.list(names.SESSIONS)) == []


def test_a_shorter_term_set_later_does_not_shorten_a_running_sessions(tmp_path: Path) -> None:
    clock = Clock()
    repo = _repo(tmp_path, clock)
    writer = _writer_with_data(repo)  # holds the default term of 600 s, and says so in its record
    repo.save_settings(RepoSettings(lease_term_s=10))
    name = names.session(writer.sealer.session_id)
    assert not lapsed(repo.store, repo.opener, name, 100, 10)  # GC under the new term waits for its own
    assert lapsed(repo.store, repo.opener, name, LEASE_TERM_S + 1, 10)
    assert lapsed(repo.store, repo.opener, "sessions/" + "00" * 16, 11, 10)  # gone or unreadable: the term given
    clock.now += 100
    writer.commit(_snapshot())  # within its own term
    short = BackupWriter(repo, repo.open_index(), "backup /dev/y")
    assert short.lease.term_s == 10 and short.lease.renew_s == 1  # a run started now holds the new one
    short.abort()
