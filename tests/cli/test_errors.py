"""Every documented error through the CLI: its message says what to do, its exit code is stable,
and the repository stays consistent."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft import errors
from tests.conftest import PASSWORD, PYTHON, Result, as_on_a_terminal, mounted_ext4, sh, write_image


def test_exit_codes_are_unique_and_documented() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.LiferaftError)]
    specific = [c for c in classes if c.exit_code != 2]
    codes = [c.exit_code for c in specific]
    assert len(codes) == len(set(codes)), sorted(codes)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for c in specific:
        assert f"| {c.exit_code} |" in readme, f"exit code {c.exit_code} ({c.__name__}) is not in README.md"


def test_an_unexpected_error_exits_2_with_its_traceback(
    cli: Callable[..., Result], repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from liferaft.cli import cmd_snapshots

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cmd_snapshots, "list_snapshots", broken)
    r = cli("snapshots", repo=repo)
    assert r.code == 2  # never 1, which track --status uses for 'no tracker'
    assert "Traceback" in r.err and "unexpected error (RuntimeError: a bug); please report it" in r.err


def test_wrong_password(cli: Callable[..., Result], repo: Path) -> None:
    r = cli("snapshots", password="not it", repo=repo)
    assert r.code == 12
    assert "wrong password" in r.err and "LIFERAFT_PASSWORD" in r.err


def test_no_password(cli: Callable[..., Result], repo: Path) -> None:
    r = cli("snapshots", password=None, repo=repo)
    assert r.code == 13 and "LIFERAFT_PASSWORD" in r.err


def test_not_a_repository(cli: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = cli("snapshots", repo=tmp_path / "empty")
    assert r.code == 10 and "not a liferaft repository" in r.err and "liferaft init" in r.err
    (tmp_path / "a-file").write_text("x")
    r = cli("snapshots", repo=tmp_path / "a-file")
    assert r.code == 10 and "not a liferaft repository" in r.err


def test_init_refuses_a_folder_holding_other_files(cli: Callable[..., Result], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    r = cli("init", repo=home)
    assert r.code == 2 and "already holds other files (notes.txt)" in r.err
    assert [p.name for p in home.iterdir()] == ["notes.txt"]


def test_repository_of_newer_format(cli: Callable[..., Result], repo: Path) -> None:
    cfg = json.loads((repo / "config").read_text())
    cfg["version"] = 99
    (repo / "config").write_text(json.dumps(cfg))
    r = cli("snapshots", repo=repo)
    assert r.code == 11 and "format 99" in r.err and "upgrade liferaft" in r.err


def test_init_twice_is_refused(cli: Callable[..., Result], repo: Path) -> None:
    before = sorted(p.name for p in (repo / "keys").iterdir())
    r = cli("init", repo=repo)
    assert r.code == 14 and "already exists" in r.err
    assert sorted(p.name for p in (repo / "keys").iterdir()) == before


def test_unknown_and_ambiguous_snapshot(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    r = cli("show", "latest", repo=repo)
    assert r.code == 15 and "liferaft snapshots" in r.err
    r = cli("restore", "deadbeef", str(tmp_path / "x.img"), repo=repo)
    assert r.code == 15 and not (tmp_path / "x.img").exists()
    src = tmp_path / "a.img"
    for seed in range(12):  # enough snapshots that some share a first hex digit
        write_image(src, 1 << 20, seed)
        assert cli("backup", str(src), repo=repo).code == 0
    ids = [s["id"] for s in json.loads(cli("snapshots", "--json", repo=repo).out)]
    first = [i[0] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)
    r = cli("show", shared, repo=repo)
    assert r.code == 16 and "more characters" in r.err


def test_unreadable_source(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    r = cli("backup", str(tmp_path / "missing.img"), repo=repo)
    assert r.code == 30 and "missing.img" in r.err and "no such file" in r.err
    r = cli("backup", str(tmp_path), repo=repo)
    assert r.code == 30 and "a directory, not a block device or regular file" in r.err and "mountpoint" in r.err
    assert json.loads(cli("snapshots", "--json", repo=repo).out) == []


@pytest.mark.parametrize("kind", ["file", "device"])
def test_rescue_reads_around_unreadable_sectors(  # type: ignore[no-untyped-def]
    cli: Callable[..., Result], repo: Path, tmp_path: Path, bad_sectors: Callable[..., Path], loopdev, kind: str
) -> None:
    """A failing disk: what reads is kept; each unreadable 4 KiB sector is stored as zeros and
    recorded; the snapshot restores with zeros exactly there and everything else bit-exact."""
    backing = tmp_path / "disk.img"
    data = write_image(backing, 8 << 20)
    bad = (5 * (1 << 20) + 4096, 5 * (1 << 20) + 12288)  # two sectors, inside one chunk
    disk = bad_sectors(backing, *bad)
    source = str(disk) if kind == "file" else loopdev(disk)
    r = cli("backup", source, "--rescue", "--json", repo=repo)
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert any("8192 bytes in 1 ranges could not be read" in n for n in result["notes"]), result["notes"]
    shown = json.loads(cli("show", result["snapshot_id"], "--json", repo=repo).out)
    assert shown["stats"]["lost"] == [list(bad)] and shown["stats"]["lost_bytes"] == 8192
    text = cli("show", result["snapshot_id"], repo=repo).out
    assert f"bytes {bad[0]}-{bad[1]} (8.0 KiB)" in text
    out = tmp_path / "out.img"
    assert cli("restore", result["snapshot_id"], str(out), "--verify", repo=repo).code == 0
    want = bytearray(data)
    want[bad[0] : bad[1]] = bytes(bad[1] - bad[0])
    assert out.read_bytes() == bytes(want)


def test_a_source_that_refuses_root_names_the_real_cause(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, bad_sectors: Callable[..., Path]
) -> None:
    """EPERM to root (a hypervisor's or container's device policy; here a FUSE file that refuses
    the open): never 'run as root' to root."""
    backing = tmp_path / "disk.img"
    write_image(backing, 2 << 20)
    r = cli("backup", str(bad_sectors(backing, 0, 0, "EPERM")), repo=repo)
    assert r.code == 30 and "refused even root (EPERM" in r.err and "run as root" not in r.err, r.err


@pytest.mark.parametrize("kind", ["file", "device"])
def test_unreadable_sector_names_the_byte_and_commits_nothing(  # type: ignore[no-untyped-def]
    cli: Callable[..., Result], repo: Path, tmp_path: Path, bad_sectors: Callable[..., Path], loopdev, kind: str
) -> None:
    """A file is read through the page cache; a device with O_DIRECT, by threads reading ahead
    of the workers: the error must come through either way, and stop every thread."""
    backing = tmp_path / "disk.img"
    write_image(backing, 8 << 20)
    disk = bad_sectors(backing, 5 * (1 << 20) + 4096, 5 * (1 << 20) + 8192)
    source = str(disk) if kind == "file" else loopdev(disk)
    r = cli("backup", source, repo=repo)
    assert r.code == 30
    assert "I/O error at byte 5246976" in r.err and "unreadable sector" in r.err  # the bad sector itself
    assert "--rescue" in r.err
    assert json.loads(cli("snapshots", "--json", repo=repo).out) == []
    assert cli("verify", "--read-data", repo=repo).code == 0


def test_target_refusals(cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "s.img"
    write_image(src, 16 << 20)
    assert cli("backup", str(src), repo=repo).code == 0
    small = tmp_path / "small.img"
    sh("truncate", "-s", "8M", str(small))
    r = cli("restore", "latest", loopdev(small), repo=repo)
    assert r.code == 41 and "at least 16777216 bytes" in r.err
    large = tmp_path / "large.img"
    sh("truncate", "-s", "32M", str(large))
    dev = loopdev(large)
    r = cli("restore", "latest", dev, repo=repo)
    assert r.code == 42 and "--force" in r.err
    assert cli("restore", "latest", dev, "--force", "--verify", repo=repo).code == 0
    with open(dev, "rb") as f:
        assert f.read(16 << 20) == src.read_bytes()
    # a target another program holds open (not exclusively) is refused, named, and left alone
    import subprocess

    with open(dev, "r+b") as held:
        held.write(b"unchanged")
        held.flush()
        holder = subprocess.Popen(["sleep", "600"], stdin=held)
    try:
        r = cli("restore", "latest", dev, "--force", repo=repo)
        assert r.code == 43 and f"open in pid {holder.pid} (sleep)" in r.err, r.err
    finally:
        holder.kill()
        holder.wait()
    with open(dev, "rb") as f:
        assert f.read(9) == b"unchanged"
    # a mounted target is refused
    sh("mkfs.ext4", "-q", "-F", dev)
    mnt = mount(dev, tmp_path / "m")
    r = cli("restore", "latest", dev, "--force", repo=repo)
    assert r.code == 43 and str(mnt) in r.err
    assert (mnt / "lost+found").is_dir()  # untouched
    # a folder that cannot be written
    ro = mount("tmpfs", tmp_path / "ro", "-t", "tmpfs", "-o", "ro,size=1M")
    r = cli("restore", "latest", str(ro / "x.img"), repo=repo)
    assert r.code == 40 and f"{ro / 'x.img'}: Read-only file system" in r.err
    # an existing file needs --force
    existing = tmp_path / "exists.img"
    existing.write_bytes(b"keep me")
    r = cli("restore", "latest", str(existing), repo=repo)
    assert r.code == 44 and existing.read_bytes() == b"keep me"


def small_filesystem(tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path]) -> Path:
    """A mounted 48 MiB ext4, to fill up."""
    return mounted_ext4(tmp_path, loopdev, mount, "48M", "small")


def test_repository_disk_full(cli: Callable[..., Result], tmp_path: Path, loopdev, mount) -> None:  # type: ignore[no-untyped-def]
    repo = small_filesystem(tmp_path, loopdev, mount) / "repo"
    assert cli("init", repo=repo).code == 0
    src = tmp_path / "big.img"
    src.write_bytes(os.urandom(64 << 20))  # incompressible, larger than the filesystem
    r = cli("backup", str(src), repo=repo)
    assert r.code == 20 and "full" in r.err and "consistent" in r.err
    assert not list((repo / "snapshots").glob("*")) if (repo / "snapshots").exists() else True
    assert not [p for p in repo.rglob(".tmp-*")]
    # the repository still works once there is room
    small = tmp_path / "small.img"
    write_image(small, 4 << 20)
    assert cli("backup", str(small), repo=repo).code == 0
    assert cli("verify", "--read-data", repo=repo).code == 0


def _interrupt_when(repo: Path, started: Callable[[], bool], *args: str, sig: int = signal.SIGINT) -> str:
    """Run liferaft with args, send sig as soon as started() holds; its stderr (exit 130)."""
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    cmd = [PYTHON, "-m", "liferaft", *args, "--repo", str(repo)]
    p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=as_on_a_terminal)
    deadline = time.monotonic() + 60
    while not started():
        assert p.poll() is None and time.monotonic() < deadline, "the command ended before it could be interrupted"
        time.sleep(0.01)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "consistent" in err
    return err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "term", "hangup"])
def test_interrupted_backup_exits_130_and_commits_nothing(repo: Path, tmp_path: Path, sig: int) -> None:
    src = tmp_path / "big.img"
    src.write_bytes(os.urandom(256 << 20))
    packs = repo / "packs"
    # midway: the first pack is written, the rest is not
    _interrupt_when(repo, lambda: packs.exists() and any(f.is_file() for f in packs.rglob("*")), "backup", str(src), sig=sig)
    assert not list((repo / "snapshots").glob("*")) if (repo / "snapshots").exists() else True
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    check = subprocess.run(
        [PYTHON, "-m", "liferaft", "verify", "--read-data", "--repo", str(repo)], env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_hang_up_that_nohup_ignores_stays_ignored(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "big.img"
    src.write_bytes(os.urandom(128 << 20))
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}

    def under_nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    cmd = [PYTHON, "-m", "liferaft", "backup", "--repo", str(repo), str(src)]
    p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=under_nohup)
    packs, deadline = repo / "packs", time.monotonic() + 60
    while not (packs.exists() and any(f.is_file() for f in packs.rglob("*"))):
        assert p.poll() is None and time.monotonic() < deadline, "the backup ended before the hang-up"
        time.sleep(0.01)
    p.send_signal(signal.SIGHUP)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err  # it ran to the end
    assert len(list((repo / "snapshots").glob("*"))) == 1


def test_a_restore_replaces_a_file_only_when_complete(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "big.img"
    src.write_bytes(os.urandom(256 << 20))
    assert cli("backup", str(src), repo=repo).code == 0
    old = tmp_path / "old.img"
    old.write_bytes(b"yesterday's image")
    os.chmod(old, 0o640)
    os.chown(old, 65534, 0)
    link = tmp_path / "link.img"
    link.symlink_to(old.name)
    partial = tmp_path / "old.img.liferaft-partial"

    def writing() -> bool:
        return partial.exists() and partial.stat().st_blocks * 512 > 16 << 20

    err = _interrupt_when(repo, writing, "restore", "--force", "latest", str(link))
    assert "partial image was removed" in err and "as it was" in err
    assert old.read_bytes() == b"yesterday's image" and not partial.exists()
    # a new file: nothing is left under its name
    new = tmp_path / "new.img"
    err = _interrupt_when(repo, lambda: (tmp_path / "new.img.liferaft-partial").exists(), "restore", "latest", str(new))
    assert "was not created" in err and not list(tmp_path.glob("new.img*"))
    # complete: the file the link names is replaced, its owner and mode kept
    assert cli("restore", "--force", "latest", str(link), repo=repo).code == 0
    assert link.is_symlink() and old.read_bytes() == src.read_bytes() and not partial.exists()
    st = old.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (65534, 0o640)


def test_two_restores_never_mix_in_one_file(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "big.img"
    src.write_bytes(os.urandom(256 << 20))
    assert cli("backup", str(src), repo=repo).code == 0
    target = tmp_path / "out.img"
    partial = tmp_path / "out.img.liferaft-partial"
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    cmd = [PYTHON, "-m", "liferaft", "restore", "--repo", str(repo), "latest", str(target)]
    first = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_blocks):
        assert first.poll() is None and time.monotonic() < deadline, "the restore ended before the second began"
        time.sleep(0.01)
    r = cli("restore", "latest", str(target), "--force", repo=repo)  # a second restore to the same file
    assert r.code == 43 and "another liferaft restore is writing it" in r.err
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert target.read_bytes() == src.read_bytes()
    # what a killed restore leaves behind is no lock: the next restore takes it over
    killed = subprocess.Popen([*cmd, "--force"], env=env, stderr=subprocess.DEVNULL)
    while not (partial.exists() and partial.stat().st_blocks):
        assert killed.poll() is None and time.monotonic() < deadline + 60, "the restore ended before it was killed"
        time.sleep(0.01)
    killed.kill()
    killed.wait()
    assert partial.exists()
    assert cli("restore", "latest", str(target), "--force", repo=repo).code == 0
    assert target.read_bytes() == src.read_bytes() and not partial.exists()
    # a delta restore writes in place: it locks the file itself
    with open(target, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a delta restore running elsewhere does
        r = cli("restore", "latest", str(target), "--delta", repo=repo)
        assert r.code == 43 and "another liferaft restore is writing it" in r.err
    assert cli("restore", "latest", str(target), "--delta", repo=repo).code == 0


def test_a_restore_onto_a_full_disk_keeps_the_old_file(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount
) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "big.img"
    src.write_bytes(os.urandom(64 << 20))
    assert cli("backup", str(src), repo=repo).code == 0
    mnt = small_filesystem(tmp_path, loopdev, mount)
    old = mnt / "disk.img"
    old.write_bytes(b"the only copy")
    r = cli("restore", "--force", "latest", str(old), repo=repo)
    assert r.code == 40 and "full" in r.err and str(old) in r.err
    assert old.read_bytes() == b"the only copy" and [p.name for p in mnt.iterdir() if p.name != "lost+found"] == ["disk.img"]


def test_a_restore_onto_a_device_whose_writes_fail_fails(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount
) -> None:  # type: ignore[no-untyped-def]
    """Writes reach the page cache first and fail only at writeback. The restore fails there,
    while writing (the kernel reports such an error once, so it is not left for the last fsync)."""
    src = tmp_path / "big.img"
    src.write_bytes(os.urandom(128 << 20))  # twice the write-behind window
    assert cli("backup", str(src), repo=repo).code == 0
    backing = small_filesystem(tmp_path, loopdev, mount) / "disk.img"
    sh("truncate", "-s", "128M", str(backing))  # on 48 MiB: writes beyond about 46 MiB fail
    dev = loopdev(backing)
    r = cli("restore", "latest", dev, repo=repo)
    assert r.code == 40 and f"cannot write the target {dev}" in r.err and "at byte" in r.err
    assert "restored" not in r.out


@pytest.mark.parametrize(
    "args",
    [
        ("backup", "x.img", "--max-freeze", "0"),
        ("backup", "x.img", "--max-passes", "-1"),
        ("backup", "x.img", "--trace-buffer", "0"),
        ("track", "/dev/loop0", "--trace-buffer", "-8"),
    ],
)
def test_options_below_one_are_usage_errors(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    from liferaft.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    assert stopped.value.code == 2 and "invalid positive" in capsys.readouterr().err


def test_bad_sizes_and_levels(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "s.img"
    write_image(src, 1 << 20)
    r = cli("backup", str(src), "--freeze-memory", "0", repo=repo)
    assert r.code == 2 and "a size above zero" in r.err
    r = cli("init", "--compression", "99", repo=tmp_path / "new")
    assert r.code == 2 and "levels run from -7 (fastest) to 22" in r.err


def test_tracking_needs_a_block_device(cli: Callable[..., Result], tmp_path: Path) -> None:
    img = tmp_path / "disk.img"
    write_image(img, 1 << 20)
    for args in (("track", str(img)), ("track", "--status", str(img))):
        r = cli(*args)
        assert r.code == 30 and "not a block device" in r.err and "loop device" in r.err
    r = cli("track", str(tmp_path / "missing"))
    assert r.code == 30 and "No such file" in r.err


def test_a_read_only_repository_restores_but_takes_no_backup(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, mount
) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "s.img"
    data = write_image(src, 2 << 20)
    assert cli("backup", str(src), repo=repo).code == 0
    ro = mount(str(repo), tmp_path / "ro", "--bind")  # as backup media mounted read-only for a recovery
    sh("mount", "-o", "remount,bind,ro", str(ro))
    r = cli("backup", str(src), repo=ro)
    assert r.code == 21 and "Read-only file system" in r.err
    out = tmp_path / "out.img"
    assert cli("restore", "latest", str(out), "--verify", repo=ro).code == 0
    assert out.read_bytes() == data
    assert cli("verify", "--read-data", repo=ro).code == 0


def test_an_image_file_whose_filesystem_is_mounted_is_not_restored_over(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount
) -> None:  # type: ignore[no-untyped-def]
    img = tmp_path / "fs.img"
    sh("truncate", "-s", "16M", str(img))
    sh("mkfs.ext4", "-q", "-F", str(img))
    assert cli("backup", str(img), repo=repo).code == 0
    mnt = mount(loopdev(img), tmp_path / "m")  # as a VM's or a test system's disk file in use
    before = img.read_bytes()
    for extra in (("--force",), ("--delta",)):
        r = cli("restore", "latest", str(img), *extra, repo=repo)
        assert r.code == 43 and f"mounted at {mnt}" in r.err, (extra, r.err)
    assert img.read_bytes() == before and not list(tmp_path.glob("fs.img.*"))
