"""Kill -9 a backup at every write it makes: the repository stays consistent, nothing referenced
is missing, and the next backup succeeds and restores exactly.

The kills are crash points (``store/faults.py``): the backup process sends itself SIGKILL just
before its Nth write to the store (a put, a sync or a delete), for N = 1, 2, 3, ... until a run
gets through all its writes. So every gap between two writes is hit, whatever the machine's
speed (timed kills missed them on a fast machine and failed the test)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from liferaft.store.faults import CRASH_ENV
from tests.conftest import PASSWORD, PYTHON

MAX_WRITES = 200
"""A backup of the test source makes a few dozen writes; more means the loop is broken."""


def run(*args: str, repo: Path, crash_at: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    if crash_at:
        env[CRASH_ENV] = str(crash_at)
    return subprocess.run([PYTHON, "-m", "liferaft", *args, "--repo", str(repo)], env=env, capture_output=True, text=True)


def kill_at_every_write(args: tuple[str, ...], repo: Path, after_kill: Callable[[int], None] = lambda write: None) -> int:
    """Run ``liferaft *args`` with a crash point at write 1, 2, 3, ... until a run gets through all
    its writes; after each kill, after_kill(write) and ``verify --read-data`` must pass. The
    number of kills."""
    for write in range(1, MAX_WRITES):
        done = run(*args, repo=repo, crash_at=write)
        if done.returncode == 0:  # this run had fewer writes: every one of them has been a crash point
            return write - 1
        assert done.returncode == -signal.SIGKILL, f"crash point {write}: exit {done.returncode}: {done.stderr}"
        after_kill(write)
        check = run("verify", "--read-data", repo=repo)
        assert check.returncode == 0, f"after a kill before write {write}: {check.stdout}{check.stderr}"
    raise AssertionError(f"liferaft {args[0]} was still writing after {MAX_WRITES} writes")


def test_kill_9_at_every_write_of_a_backup(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    # 160 MiB, mostly incompressible, so a run writes several packs
    with open(src, "wb") as f:
        for i in range(160):
            f.write(os.urandom(1 << 20) if i % 5 else bytes(1 << 20))
    assert run("backup", str(src), repo=repo).returncode == 0  # something to dedup against
    with open(src, "r+b") as f:  # change most of it, so the next runs write packs again
        for i in range(0, 160, 2):
            f.seek(i << 20)
            f.write(os.urandom(1 << 20))
    committed = set(os.listdir(repo / "snapshots"))

    def whole_if_committed(write: int) -> None:
        """A kill after the snapshot's write leaves it committed (the run had writes left: the
        lease's last check, its end); then it must be whole, as verify --read-data checks next."""
        now = set(os.listdir(repo / "snapshots"))
        for sid in now - committed:
            out = tmp_path / "killed.img"
            r = run("restore", sid, str(out), "--force", repo=repo)
            assert r.returncode == 0 and out.read_bytes() == src.read_bytes(), f"crash point {write}: {r.stderr}"
        committed.update(now)

    kills = kill_at_every_write(("backup", "-q", str(src)), repo, whole_if_committed)
    # killed before: the lease, each of at least two packs, the sync, the index delta and the sync
    # after it; from then on the packs of the killed runs dedup, and a run makes fewer writes
    assert kills >= 6, f"a backup of several packs made only {kills} writes"
    out = tmp_path / "out.img"
    r = run("restore", "latest", str(out), "--verify", repo=repo)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes()


def test_a_backup_killed_halfway_is_resumed_not_uploaded_again(repo: Path, tmp_path: Path) -> None:
    """The packs a killed first backup uploaded are used by the next run (read from their
    footers), not uploaded again: both runs store about what one whole backup does."""
    src = tmp_path / "disk.img"
    src.write_bytes(os.urandom(160 << 20))
    whole = tmp_path / "whole"
    assert run("init", repo=whole).returncode == 0
    assert run("backup", "-q", str(src), repo=whole).returncode == 0
    size = sum(p.stat().st_size for p in (whole / "packs").rglob("*") if p.is_file())
    killed = run("backup", "-q", str(src), repo=repo, crash_at=4)  # a few packs in, before its delta
    assert killed.returncode == -signal.SIGKILL
    assert any(p.is_file() for p in (repo / "packs").rglob("*"))  # some packs made it
    assert not (repo / "index").exists() or not list((repo / "index").iterdir())  # nothing indexed them
    assert run("backup", "-q", str(src), repo=repo).returncode == 0
    both = sum(p.stat().st_size for p in (repo / "packs").rglob("*") if p.is_file())
    assert both <= 1.02 * size, (both, size)
    out = tmp_path / "out.img"
    assert run("restore", "latest", str(out), "--verify", repo=repo).returncode == 0
    assert out.read_bytes() == src.read_bytes()
