"""liferaft mount: a snapshot's disk and partitions as read-only files through real FUSE, ended
by Ctrl-C, SIGTERM or ``liferaft umount`` with nothing left mounted; a repository error gives the
reader EIO, never wrong bytes. And the files lost bytes fall in, named through such a mount
(verify --files, show of a rescue backup)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.test_damage import blob_of, flip
from tests.conftest import PASSWORD, PYTHON, Result, as_on_a_terminal, sh
from tests.disks import SAMPLE, Part, _walk, gpt_image, make_disk, make_fs, mounted, partition_loop, tree

BOUND_S = 120.0
"""How long a mount may take to appear or to go (a bound, not a timing)."""


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {BOUND_S} s"
        time.sleep(0.05)


@pytest.fixture
def mounter(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], Path]]]:
    """mounter(repo, snapshot) -> (the `liferaft mount` process, its directory), mounted; whatever
    a test leaves is unmounted and the process ended at teardown."""
    made: list[tuple[subprocess.Popen[str], Path]] = []

    def start(repo: Path, snapshot: str = "latest", *options: str) -> tuple[subprocess.Popen[str], Path]:
        where = tmp_path / f"mnt{len(made)}"
        where.mkdir()
        env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
        p = subprocess.Popen(
            [PYTHON, "-m", "liferaft", "mount", snapshot, str(where), *options, "--repo", str(repo)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=as_on_a_terminal,
        )  # fmt: skip
        made.append((p, where))
        wait_for(lambda: os.path.ismount(where) or p.poll() is not None, "the mount appears")
        assert p.poll() is None, p.communicate()
        return p, where

    yield start
    for p, where in made:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=BOUND_S)


def partition_range(image: Path, number: int) -> tuple[int, int]:
    start, sectors = sh("partx", "-g", "-o", "START,SECTORS", "-n", str(number), str(image)).split()
    return int(start) * 512, int(sectors) * 512


@pytest.mark.parametrize("end", ["SIGINT", "SIGTERM", "umount"])
def test_a_mount_shows_the_disk_and_each_partition_and_goes_cleanly(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, mounter: Callable[..., tuple[subprocess.Popen[str], Path]],
    end: str,
) -> None:  # fmt: skip
    disk = tmp_path / "disk.img"
    make_disk(disk, "gpt", [Part("ext4", 16), Part("fat32", 40)], tmp_path)
    assert cli("backup", str(disk), repo=repo).code == 0
    p, where = mounter(repo)
    assert sorted(os.listdir(where)) == ["disk.img", "part1.img", "part2.img"]
    restored = tmp_path / "restored.img"
    assert cli("restore", "latest", str(restored), repo=repo).code == 0
    image = (where / "disk.img").read_bytes()
    assert image == restored.read_bytes()  # free blocks were not stored: zeros there, as restore writes
    start, size = partition_range(disk, 1)
    assert (where / "part1.img").read_bytes() == image[start : start + size]
    # ...and the filesystem in it is whole: e2fsck, read-only, through the mount
    check = subprocess.run(["e2fsck", "-n", "-f", str(where / "part1.img")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with pytest.raises(OSError):
        (where / "disk.img").write_bytes(b"x")  # read-only
    if end == "umount":
        assert cli("umount", str(where)).code == 0
    else:
        p.send_signal(getattr(signal, end))
    _, err = p.communicate(timeout=BOUND_S)
    assert p.returncode == 0, err
    assert "mounted on" in err
    assert not os.path.ismount(where)
    assert str(where) not in Path("/proc/mounts").read_text()


def test_a_pack_deleted_under_a_mount_gives_the_reader_eio_and_a_log_line(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, mounter: Callable[..., tuple[subprocess.Popen[str], Path]]
) -> None:
    src = tmp_path / "src.img"
    src.write_bytes(os.urandom(8 << 20))
    assert cli("backup", str(src), repo=repo).code == 0
    p, where = mounter(repo)
    for pack in (repo / "packs").rglob("*"):
        if pack.is_file():
            pack.unlink()
    with open(where / "disk.img", "rb") as f, pytest.raises(OSError) as caught:
        os.pread(f.fileno(), 65536, 5 << 20)
    assert caught.value.errno == 5  # EIO, never zeros or other bytes
    assert cli("umount", str(where)).code == 0
    _, err = p.communicate(timeout=BOUND_S)
    assert "the reader got EIO" in err and "disk.img" in err, err


def ext4_with_files(tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path]) -> tuple[Path, int]:
    """A bare ext4 image (4 KiB blocks) holding /big (4 MiB), /dir/small; /big's first byte."""
    img = tmp_path / "fs.ext4"
    sh("truncate", "-s", "48M", str(img))
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", str(img))
    where = mount(loopdev(img), tmp_path / "fs")
    (where / "big").write_bytes(os.urandom(4 << 20))
    (where / "dir").mkdir()
    (where / "dir" / "small").write_text("small\n")
    sh("umount", str(where))
    block = int(sh("debugfs", "-R", "bmap /big 0", str(img)).split()[-1])
    return img, block * 4096


def test_verify_files_names_the_file_a_damaged_chunk_held(  # type: ignore[no-untyped-def]
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount
) -> None:
    img, at = ext4_with_files(tmp_path, loopdev, mount)
    assert cli("backup", str(img), repo=repo).code == 0
    pack, inside = blob_of(repo, tmp_path, (at + (2 << 20)) // (1 << 20))  # a chunk in the middle of /big
    flip(pack, inside)
    r = cli("verify", "--read-data", "--files", repo=repo)
    assert r.code == 50, r.out + r.err
    assert "the filesystem (ext4): 1 file: /big" in r.out, r.out
    lost = json.loads(cli("verify", "--files", "--json", repo=repo).out)["lost"]
    assert lost[0]["files"][0]["files"] == ["/big"]
    # the mount in this process ended: a write to a closed pipe raises again, as Python has it
    # (libfuse, ending, set SIGPIPE back to its default, which kills the process on the spot)
    read, write = os.pipe()
    os.close(read)
    with pytest.raises(BrokenPipeError):
        os.write(write, b"x")
    os.close(write)


def test_show_names_the_files_a_rescue_backup_could_not_read(  # type: ignore[no-untyped-def]
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount, bad_sectors
) -> None:
    img, at = ext4_with_files(tmp_path, loopdev, mount)
    bad = (at + (1 << 20), at + (1 << 20) + 8192)
    r = cli("backup", str(bad_sectors(img, *bad)), "--rescue", "--json", repo=repo)
    assert r.code == 0, r.err
    sid = json.loads(r.out)["snapshot_id"]
    text = cli("show", sid, repo=repo).out
    assert "the filesystem (ext4): 1 file: /big" in text, text
    shown = json.loads(cli("show", sid, "--json", repo=repo).out)
    assert shown["lost_files"][0]["files"] == ["/big"]


def browsed_as_made(disk: Path, where: Path, parts: tuple[tuple[int, str], ...], tmp_path: Path) -> None:
    """Each partition's files under where/partN equal those its own driver reads from disk."""
    for n, fs in parts:  # --browse mounts them after the FUSE mount itself is up
        wait_for(lambda n=n: os.path.ismount(where / f"part{n}"), f"part{n} mounted")
        with partition_loop(disk, n, readonly=True) as dev:
            want = tree(dev, fs, tmp_path / f"orig{n}")
        assert _walk(where / f"part{n}") == want, f"partition {n} ({fs})"


def test_browse_mounts_each_filesystem_read_only_and_unmounts_them_all(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, mounter: Callable[..., tuple[subprocess.Popen[str], Path]]
) -> None:
    disk = tmp_path / "disk.img"
    make_disk(disk, "gpt", [Part("ext4", 16), Part("ntfs", 16), Part("fat16", 24)], tmp_path)
    assert cli("backup", str(disk), repo=repo).code == 0
    p, where = mounter(repo, "latest", "--browse")
    browsed_as_made(disk, where, ((1, "ext4"), (2, "ntfs")), tmp_path)
    with partition_loop(disk, 3, readonly=True) as dev:  # FAT without a kernel driver: mtools reads part3.img
        assert tree(str(where / "part3.img"), "fat16", tmp_path / "copy3") == tree(dev, "fat16", tmp_path / "orig3")
    with pytest.raises(OSError):
        (where / "part1" / "new-file").write_bytes(b"x")  # read-only
    vfat = "vfat" in Path("/proc/filesystems").read_text()
    if not vfat:  # this kernel: the FAT partition is named with what to do instead
        assert sorted(os.listdir(where / "part3")) == []
    assert cli("umount", str(where)).code == 0
    _, err = p.communicate(timeout=BOUND_S)
    assert p.returncode == 0, err
    assert "part1/ (ext4)" in err and "part2/ (ntfs)" in err
    if not vfat:
        assert "part3: vfat, this kernel has no vfat: read it with mtools (mcopy -i" in err, err
    assert str(where) not in Path("/proc/mounts").read_text()


def test_browse_mounts_xfs_and_btrfs_too(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, mounter: Callable[..., tuple[subprocess.Popen[str], Path]]
) -> None:
    disk = gpt_image(tmp_path / "disk.img", 720, [320, 320])  # XFS needs 300 MiB at least
    for n, fs in ((1, "xfs"), (2, "btrfs")):
        with partition_loop(disk, n) as dev:
            make_fs(dev, fs)
            with mounted(dev, tmp_path / f"fill{n}", fs) as m:
                shutil.copytree(SAMPLE, m / "doc", symlinks=True)
                (m / "hello.txt").write_text(f"written on {fs}\n")
    assert cli("backup", str(disk), repo=repo).code == 0
    p, where = mounter(repo, "latest", "--browse")
    browsed_as_made(disk, where, ((1, "xfs"), (2, "btrfs")), tmp_path)
    assert cli("umount", str(where)).code == 0
    _, err = p.communicate(timeout=BOUND_S)
    assert p.returncode == 0 and "part1/ (xfs)" in err and "part2/ (btrfs)" in err, err
    assert str(where) not in Path("/proc/mounts").read_text()
