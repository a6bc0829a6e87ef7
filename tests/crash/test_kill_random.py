"""SIGKILL at random moments: rounds of a backup and a forget + gc run at once (gc with no safety
margin, the harshest setting), both killed at a random moment of each round. Whatever was
killed where, afterwards `verify --read-data` passes and every snapshot not forgotten restores
exactly as its source was. The crash-point tests hit every write deterministically; this one
hits the moments between (inside a write, mid-upload, while GC marks). Where a round's kill
comes after both ended, that round proves less but nothing fails: no outcome depends on timing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import PASSWORD, PYTHON
from tests.crash.test_kill_backup import run

ROUNDS = 12
BOUND_S = 300.0


def start(*args: str, repo: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    return subprocess.Popen([PYTHON, "-m", "liferaft", *args, "--repo", str(repo)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def test_sigkill_at_random_moments_of_backups_and_gc(repo: Path, tmp_path: Path) -> None:
    rnd = random.Random(2715)
    src = tmp_path / "disk.img"
    src.write_bytes(rnd.randbytes(64 << 20))
    versions: dict[str, bytes] = {}  # snapshot id -> the sha256 of its source
    killed = 0
    for _ in range(ROUNDS):
        with open(src, "r+b") as f:  # a few MiB change each round
            for _ in range(4):
                f.seek(rnd.randrange(64) << 20)
                f.write(rnd.randbytes(1 << 20))
        digest = hashlib.sha256(src.read_bytes()).digest()
        before = set(os.listdir(repo / "snapshots")) if (repo / "snapshots").exists() else set()
        backup = start("backup", "-q", str(src), repo=repo)
        assert run("forget", "-q", "--keep-last", "2", repo=repo).returncode == 0
        gc = start("gc", "-q", "--safety-margin", "0s", repo=repo)
        time.sleep(rnd.uniform(0.05, 0.8))
        for p in (backup, gc):
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed += 1
            p.wait(timeout=BOUND_S)
        for sid in set(os.listdir(repo / "snapshots")) - before:
            versions[sid] = digest
        check = run("verify", "--read-data", repo=repo)
        assert check.returncode == 0, check.stdout + check.stderr
    listed = [s["id"] for s in json.loads(run("snapshots", "--json", repo=repo).stdout)]
    assert listed, "no backup committed in any round"
    out = tmp_path / "out.img"
    for sid in listed:
        r = run("restore", sid, str(out), "--force", repo=repo)
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(out.read_bytes()).digest() == versions[sid], f"snapshot {sid[:12]} restored wrong"
    assert run("backup", "-q", str(src), repo=repo).returncode == 0  # and backups go on
    print(f"{killed} kills in {ROUNDS} rounds")


def test_sigkill_at_random_moments_of_repair(repo: Path, tmp_path: Path) -> None:
    """Repair killed at random moments over many runs (its deltas deleted first, so it has work
    to do every time): nothing referenced is lost, and a run left alone finishes the job."""
    rnd = random.Random(15)
    src = tmp_path / "disk.img"
    src.write_bytes(rnd.randbytes(48 << 20))
    assert run("backup", "-q", str(src), repo=repo).returncode == 0
    want = hashlib.sha256(src.read_bytes()).digest()
    for delta in (repo / "index").iterdir():
        delta.unlink()
    for _ in range(ROUNDS):
        p = start("repair", "-q", repo=repo)
        time.sleep(rnd.uniform(0.05, 0.8))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=BOUND_S)
        check = run("verify", "--read-data", repo=repo)
        assert check.returncode == 0, check.stdout + check.stderr  # the packs' footers serve meanwhile
    assert run("repair", "-q", repo=repo).returncode == 0
    out = tmp_path / "out.img"
    assert run("restore", "latest", str(out), repo=repo).returncode == 0
    assert hashlib.sha256(out.read_bytes()).digest() == want
    assert run("gc", "-q", "--safety-margin", "0s", repo=repo).returncode == 0
