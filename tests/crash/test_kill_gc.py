"""Kill -9 GC at every write it makes (crash points, as for backups), in a run that condemns and
repacks and in the run that deletes: after every kill verify --read-data passes; in the end the
kept snapshot restores exactly and nothing unreferenced is left."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.crash.test_kill_backup import kill_at_every_write, run


def test_kill_9_at_every_write_of_gc(repo: Path, tmp_path: Path) -> None:
    rnd = __import__("random").Random(9)
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    a.write_bytes(rnd.randbytes(48 << 20))
    b.write_bytes(rnd.randbytes(40 << 20) + a.read_bytes()[: 8 << 20])  # shares 8 MiB with a
    for src in (a, b):
        assert run("backup", "-q", str(src), repo=repo).returncode == 0
    listed = json.loads(run("snapshots", "--json", repo=repo).stdout)
    (repo / "snapshots" / listed[0]["id"]).unlink()  # forget a's snapshot
    gc = ("gc", "-q", "--safety-margin", "0s")
    # the first run condemns a's packs and repacks the one b shares 8 MiB of; the second deletes
    for step, least in (("a condemning and repacking", 5), ("a deleting", 5)):
        kills = kill_at_every_write(gc, repo)
        assert kills >= least, f"{step} gc made only {kills} writes"
    out = tmp_path / "out.img"
    r = run("restore", "latest", str(out), "--verify", repo=repo)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b.read_bytes()
    assert run("gc", "-q", "--safety-margin", "0s", repo=repo).returncode == 0
    assert not (repo / "condemned").exists() or not os.listdir(repo / "condemned")
    final = run("verify", "--read-data", "--json", repo=repo)
    assert json.loads(final.stdout)["unreferenced_packs"] == 0
