"""Kill -9 a backup at many points: the repository stays consistent, nothing referenced is missing,
and the next backup succeeds and restores exactly."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import PASSWORD, PYTHON


def run(*args: str, repo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    return subprocess.run([PYTHON, "-m", "liferaft", *args, "--repo", str(repo)], env=env, capture_output=True, text=True)


def test_kill_9_at_many_points(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    # 384 MiB, mostly incompressible, so a run writes a dozen packs and takes a few seconds
    with open(src, "wb") as f:
        for i in range(384):
            f.write(os.urandom(1 << 20) if i % 5 else bytes(1 << 20))
    assert run("backup", str(src), repo=repo).returncode == 0  # something to dedup against
    with open(src, "r+b") as f:  # change most of it, so the next runs write packs again
        for i in range(0, 384, 2):
            f.seek(i << 20)
            f.write(os.urandom(1 << 20))
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    kills = 0
    for delay in (0.3, 0.5, 0.7, 0.9, 1.1, 1.4, 1.7, 2.0, 2.5, 3.0):
        p = subprocess.Popen(
            [PYTHON, "-m", "liferaft", "backup", "-q", "--repo", str(repo), str(src)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        if p.poll() is None:
            p.kill()
            kills += 1
        p.wait()
        check = run("verify", "--read-data", repo=repo)
        assert check.returncode == 0, f"after kill at {delay}s: {check.stdout}{check.stderr}"
    assert kills >= 4, "the backup finished too fast to be killed midway; make the source larger"
    assert run("backup", str(src), repo=repo).returncode == 0
    out = tmp_path / "out.img"
    r = run("restore", "latest", str(out), "--verify", repo=repo)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes()
