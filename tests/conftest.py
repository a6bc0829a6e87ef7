"""Shared fixtures: a clean environment, a weak KDF (fast tests), the CLI run in-process, and
real loop devices and mounts that are always cleaned up, also when a test fails."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from liferaft.cli.main import main
from liferaft.crypto import keys

pytest_plugins = ["tests.s3.gateway"]  # the S3 gateway and a bucket per test, for the tests that ask

PASSWORD = "correct horse battery staple"
PYTHON = sys.executable
FAST_KDF = keys.KdfCost(time_cost=1, memory_kib=8, parallelism=1)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("LIFERAFT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # what a killed child leaves in its temp folder stays inside this test's folder
    (tmp_path / "tmp").mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # this process's too (it caches it)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(keys, "DEFAULT_COST", FAST_KDF)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run the liferaft command in-process: cli('backup', src, password=..., repo=...)."""

    def run(*args: str, password: str | None = PASSWORD, repo: str | Path | None = None) -> Result:
        if password is None:
            monkeypatch.delenv("LIFERAFT_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("LIFERAFT_PASSWORD", password)
        argv = list(args)
        if repo is not None:  # options go after the command words ('key add' has two)
            pos = 2 if args[0] == "key" else 1
            argv[pos:pos] = ["--repo", str(repo)]
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv)
        return Result(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def repo(tmp_path: Path, cli: Callable[..., Result]) -> Path:
    path = tmp_path / "repo"
    assert cli("init", repo=path).code == 0
    return path


def as_on_a_terminal() -> None:
    """preexec_fn for a child: the signal dispositions of a command typed in a shell, whatever the
    test runner inherited (a runner under nohup ignores SIGHUP, a background one SIGINT)."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def loopdev() -> Iterator[Callable[..., str]]:
    """loopdev(image_file, partscan=False) -> /dev/loopN, detached at teardown."""
    made: list[str] = []

    def attach(image: Path, partscan: bool = False) -> str:
        dev = sh("losetup", "-f", "--show", *(["-P"] if partscan else []), str(image))
        made.append(dev)
        if partscan:
            sh("partx", "-a", dev, check=False)
        return dev

    yield attach
    for dev in reversed(made):
        subprocess.run(["losetup", "-d", dev], check=False)


@pytest.fixture
def mount() -> Iterator[Callable[..., Path]]:
    """mount(device, mountpoint, *options) -> mountpoint, unmounted at teardown."""
    made: list[Path] = []

    def do(device: str, where: Path, *options: str) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        sh("mount", *options, device, str(where))
        made.append(where)
        return where

    yield do
    for where in reversed(made):
        subprocess.run(["umount", "-l", str(where)], check=False)


def mounted_ext4(tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path], size: str, name: str = "mnt") -> Path:
    """A fresh ext4 of size (no reserved blocks, so it fills up to the last block) on a loop
    device, mounted at tmp_path/name; the fixtures undo both."""
    img = tmp_path / f"{name}.ext4"
    sh("truncate", "-s", size, str(img))
    dev = loopdev(img)
    sh("mkfs.ext4", "-q", "-F", "-m", "0", dev)
    return mount(dev, tmp_path / name)


@pytest.fixture
def bad_sectors(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """bad_sectors(backing, start, end, open_errno="") -> a file reading like backing but failing
    with EIO in [start, end) (or failing to open with open_errno, 'EPERM'); served by FUSE,
    unmounted at teardown."""
    import time

    servers: list[tuple[subprocess.Popen[bytes], Path]] = []

    def serve(backing: Path, start: int, end: int, open_errno: str = "") -> Path:
        where = tmp_path / f"bad{len(servers)}"
        where.mkdir()
        args = [str(backing), str(where), str(start), str(end), *([open_errno] if open_errno else [])]
        p = subprocess.Popen([PYTHON, "-m", "tests.badsectors", *args], cwd=Path(__file__).parents[1])
        servers.append((p, where))
        deadline = time.monotonic() + 120  # a bound, not a timing: it ends when the file appears
        while time.monotonic() < deadline and p.poll() is None:
            if os.path.ismount(where):
                return where / "disk.img"
            time.sleep(0.05)
        raise RuntimeError("the bad-sector FUSE server did not start")

    yield serve
    for p, where in servers:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
        p.terminate()
        p.wait(timeout=10)


def write_image(path: Path, size: int, seed: int = 1) -> bytes:
    """A test image: random data, a compressible text region with a known secret, zeros."""
    import random

    r = random.Random(seed)
    data = bytearray(size)
    mib = 1 << 20
    for at in range(0, size, mib):
        kind = r.randrange(4)
        if kind == 0:
            data[at : at + mib] = r.randbytes(min(mib, size - at))
        elif kind == 1:
            n = min(mib, size - at)
            text = f"liferaft-secret-{seed} ".encode() * (mib // 16)
            data[at : at + n] = text[:n]
    assert len(data) == size
    path.write_bytes(bytes(data))
    return bytes(data)


@contextmanager
def writeback_off() -> Iterator[None]:
    """The kernel's periodic writeback off, restored afterwards: a mounted ext4's committed
    metadata then stays in its journal (not checkpointed to its home blocks) until something
    syncs or freezes it, whatever the machine's speed. Crash-consistent copies taken meanwhile
    need journal recovery, deterministically."""
    knob = Path("/proc/sys/vm/dirty_writeback_centisecs")
    before = knob.read_text()
    knob.write_text("0\n")
    try:
        yield
    finally:
        knob.write_text(before)


@pytest.fixture
def no_writeback() -> Iterator[None]:
    """writeback_off() for the test."""
    with writeback_off():
        yield


def fresh_files(where: Path, count: int, size: int, seed: int) -> dict[str, bytes]:
    """count new files of size random bytes in where, each fsync'ed; {name: content}."""
    import random

    r = random.Random(seed)
    made = {}
    for n in range(count):
        data = r.randbytes(size)
        with open(where / f"fresh{seed}-{n}.bin", "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        made[f"fresh{seed}-{n}.bin"] = data
    return made
