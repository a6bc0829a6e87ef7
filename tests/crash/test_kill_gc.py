"""Kill -9 GC at every write it makes (crash points, as for backups): afterwards verify
--read-data passes, the kept snapshot restores exactly, and the next GC run finishes the job."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.crash.test_kill_backup import MAX_WRITES, run


def test_kill_9_at_every_write_of_gc(repo: Path, tmp_path: Path) -> None:
    rnd = __import__("random").Random(9)
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    a.write_bytes(rnd.randbytes(48 << 20))
    b.write_bytes(rnd.randbytes(40 << 20) + a.read_bytes()[: 8 << 20])  # shares 8 MiB with a
    for src in (a, b):
        assert run("backup", "-q", str(src), repo=repo).returncode == 0
    listed = json.loads(run("snapshots", "--json", repo=repo).stdout)
    (repo / "snapshots" / listed[0]["id"]).unlink()  # forget a's snapshot
    assert run("gc", "-q", "--safety-margin", "0s", repo=repo).returncode == 0  # condemns
    kills = 0
    for write in range(1, MAX_WRITES):
        done = run("gc", "-q", "--safety-margin", "0s", repo=repo, crash_at=write)
        if done.returncode == 0:
            break
        assert done.returncode == -signal.SIGKILL, f"crash point {write}: exit {done.returncode}: {done.stderr}"
        kills += 1
        check = run("verify", "--read-data", repo=repo)
        assert check.returncode == 0, f"after a kill before write {write}: {check.stdout}{check.stderr}"
    else:
        raise AssertionError(f"gc was still writing after {MAX_WRITES} writes")
    assert kills >= 5, f"a deleting gc made only {kills} writes"
    out = tmp_path / "out.img"
    r = run("restore", "latest", str(out), "--verify", repo=repo)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b.read_bytes()
    assert run("gc", "-q", "--safety-margin", "0s", repo=repo).returncode == 0
    assert not (repo / "condemned").exists() or not os.listdir(repo / "condemned")
    final = run("verify", "--read-data", "--json", repo=repo)
    assert json.loads(final.stdout)["unreferenced_packs"] == 0
