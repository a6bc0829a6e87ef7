"""`liferaft bundle`: one file that runs on a bare Python (no site-packages, no pip, no network),
as on a rescue system, and restores bit-exact from it (docs/disaster-recovery.md)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import PASSWORD, PYTHON, Result, write_image


def test_the_bundle_restores_on_a_bare_python(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 8 << 20)
    assert cli("backup", str(src), repo=repo).code == 0
    pyz = tmp_path / "usb" / "liferaft.pyz"
    pyz.parent.mkdir()
    made = cli("bundle", str(pyz))
    assert made.code == 0 and "liferaft and" in made.out, made.err
    bare = [PYTHON, "-I", "-S"]  # the standard library alone: no site-packages at all
    assert subprocess.run([*bare, "-c", "import boto3"], capture_output=True).returncode != 0
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "LIFERAFT_PASSWORD": PASSWORD}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*bare, str(pyz), *args], env=env, capture_output=True, text=True, cwd=tmp_path)

    listed = run("snapshots", "--repo", str(repo))
    assert listed.returncode == 0 and "1 snapshot" in listed.stdout, listed.stderr
    out = tmp_path / "restored.img"
    done = run("restore", "latest", str(out), "--verify", "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data
    assert (tmp_path / "home" / ".cache" / "liferaft-bundle").is_dir()  # extracted once, then reused
