"""`restore SNAPSHOT -` writes the raw image to standard output (to pipe into dd, ssh, zstd);
`backup -` reads one from standard input: a redirected file or device in place, a pipe spooled."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from tests.conftest import PASSWORD, PYTHON, write_image


def liferaft(*args: str, repo: Path, **kw: object) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    return subprocess.run([PYTHON, "-m", "liferaft", *args, "--repo", str(repo)], env=env, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


def test_restore_to_standard_output_is_the_raw_image(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 12 << 20)  # random, text and zero stretches
    assert liferaft("backup", "-q", str(src), repo=repo).returncode == 0
    out = liferaft("restore", "-q", "latest", "-", repo=repo)
    assert out.returncode == 0, out.stderr
    assert out.stdout == data  # every byte, the zeros too: a stream has no holes
    assert not (Path.cwd() / "-").exists()
    piped = subprocess.run(f"{PYTHON} -m liferaft restore -q latest - --repo {repo} | sha256sum", shell=True,
                           env={**os.environ, "LIFERAFT_PASSWORD": PASSWORD}, capture_output=True, text=True)  # fmt: skip
    assert piped.stdout.split()[0] == hashlib.sha256(data).hexdigest()
    refused = liferaft("restore", "latest", "-", "--verify", repo=repo)
    assert refused.returncode == 2 and b"--verify cannot go with a stream" in refused.stderr
    early = f"{PYTHON} -m liferaft restore -q latest - --repo {repo} | head -c 1000 >/dev/null"
    closed = subprocess.run(f"{early}; exit ${{PIPESTATUS[0]}}",
                            shell=True, executable="/bin/bash", env={**os.environ, "LIFERAFT_PASSWORD": PASSWORD},
                            capture_output=True, text=True)  # fmt: skip
    assert closed.returncode == 40 and "the reading end of the pipe closed" in closed.stderr, closed.stderr


def test_an_empty_target_is_refused_before_anything_is_written(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    write_image(src, 2 << 20)
    assert liferaft("backup", "-q", str(src), repo=repo).returncode == 0
    r = liferaft("restore", "latest", "", repo=repo, cwd=tmp_path)
    assert r.returncode == 2 and b"give a target" in r.stderr and b"Traceback" not in r.stderr
    assert not list(tmp_path.parent.glob("*.liferaft-partial"))


def test_backup_from_standard_input(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 10 << 20)
    with open(src, "rb") as f:  # a redirected file: read in place, named as itself
        direct = liferaft("backup", "-q", "-", "--json", repo=repo, stdin=f)
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout)["source"] == str(src)
    piped = subprocess.run(f"cat {src} | {PYTHON} -m liferaft backup -q - --json --spool {tmp_path} --repo {repo}", shell=True,
                           env={**os.environ, "LIFERAFT_PASSWORD": PASSWORD}, capture_output=True, text=True)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    result = json.loads(piped.stdout)
    assert result["source"] == "stdin" and result["new_bytes"] == 0  # the same disk: deduplicated
    assert not list(tmp_path.glob("liferaft-stdin-*"))  # the spool is gone
    out = liferaft("restore", "-q", result["snapshot_id"][:12], "-", repo=repo)
    assert out.stdout == data
