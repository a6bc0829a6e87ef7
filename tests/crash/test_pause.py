"""The restic #2715 case with a real process: a backup paused (SIGSTOP) past its lease while GC
took its session for dead and deleted the packs it deduplicated against must not commit.

The pause is a pause point (``store/faults.py``): the backup stops itself just before it writes
its index delta, or its snapshot (after its last check), so the test never races it. The test
then waits until the repository's clock has passed the lease term, runs the GC that deletes,
and resumes the backup."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.store.faults import PAUSE_ENV
from tests.conftest import PASSWORD, PYTHON, Result, write_image

TERM_S = 2.0
BOUND_S = 120.0
"""How long the waits below may take at most; each ends on its condition, not on time."""


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND_S
    while not done():
        assert time.monotonic() < deadline, f"waited {BOUND_S:.0f} s for {what}"
        time.sleep(0.05)


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def _store_clock_passed(repo: Path, since: float) -> bool:
    probe = repo / "sessions" / "clock-probe"  # the folder's filesystem clock is the store's
    probe.touch()
    now = probe.stat().st_mtime
    probe.unlink()
    return now - since > TERM_S + 1


@pytest.mark.parametrize("pause_before", ["index/", "snapshots/"])
def test_a_paused_backup_whose_packs_gc_deleted_does_not_commit(
    pause_before: str, repo: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    assert cli("settings", "--lease-term", "2s", repo=repo).code == 0
    src = tmp_path / "disk.img"
    data = write_image(src, 24 << 20, seed=5)
    assert cli("backup", str(src), repo=repo).code == 0  # A: B deduplicates against most of it
    changed = os.urandom(1 << 20)
    data = data[: 3 << 20] + changed + data[4 << 20 :]
    with open(src, "r+b") as f:  # one new chunk, so B writes a pack and an index delta
        f.seek(3 << 20)
        f.write(changed)
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD, PAUSE_ENV: pause_before}
    b = subprocess.Popen(
        [PYTHON, "-m", "liferaft", "backup", str(src), "--repo", str(repo), "-q"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait("the backup to stop at its pause point", lambda: b.poll() is not None or _stopped(b.pid))
        assert b.poll() is None, b.communicate()
        session = max((p for p in (repo / "sessions").iterdir()), key=lambda p: p.stat().st_mtime)
        last_renewal = session.stat().st_mtime
        _wait("the repository's clock to pass the lease term", lambda: _store_clock_passed(repo, last_renewal))
        # meanwhile: A is forgotten, and GC (taking the paused session for dead) deletes its packs
        assert cli("forget", "latest", repo=repo).code == 0
        for _ in range(2):
            assert cli("gc", "--safety-margin", "0s", repo=repo).code == 0
        assert not [p for p in (repo / "packs").rglob("*") if p.is_file()], "gc left A's packs"
        os.kill(b.pid, signal.SIGCONT)
        _, err = b.communicate(timeout=BOUND_S)
    finally:
        if b.poll() is None:
            os.kill(b.pid, signal.SIGKILL)
            b.wait()
    assert b.returncode == 25, err  # LeaseLost
    assert "lease" in err and "paused" in err, err
    assert not list((repo / "snapshots").iterdir()), "the paused backup committed a snapshot"
    assert cli("verify", "--read-data", repo=repo).code == 0
    assert cli("backup", str(src), repo=repo).code == 0  # the next one stores everything again
    out_img = tmp_path / "out.img"
    assert cli("restore", "latest", str(out_img), repo=repo).code == 0
    assert out_img.read_bytes() == data
