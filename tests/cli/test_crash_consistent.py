"""Crash-consistent images through the CLI: a running VM's disk file (an ext4 or ext3 mounted from
an image file on XFS or btrfs, writers committing SQLite transactions, an fsync'ed log and
overwrites) backed up with --provider reflink while it stays mounted. The restored filesystem
replays its journal and holds every commit from before the clone. The live path's first map is
read after its settling freeze, so the same race cannot lose blocks there. Bare NTFS, FAT and
bigalloc ext4 filesystems are imaged used-blocks-only.
"""

from __future__ import annotations

import fcntl
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.disk.fsmap import ext
from tests import writers
from tests.cli.test_live import Writers, no_trace_left, start_writers
from tests.conftest import Result, fresh_files, sh
from tests.disks import format_and_fill, fsck, tree

__all__ = ["no_trace_left", "start_writers"]
Guest = Callable[[str, str], tuple[Path, Path]]


@pytest.fixture
def guest(tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path], no_writeback: None) -> Guest:
    """guest(host_fs, guest_fs) -> (image file, mountpoint): a guest filesystem in an image file
    on a reflink-capable host filesystem, mounted through a loop device as a VM would use it."""

    def make(host_fs: str, guest_fs: str) -> tuple[Path, Path]:
        host_img = tmp_path / "host.img"
        sh("truncate", "-s", "1G", str(host_img))
        dev = loopdev(host_img)
        sh("mkfs.xfs", "-q", "-f", "-m", "reflink=1", dev) if host_fs == "xfs" else sh("mkfs.btrfs", "-q", "-f", dev)
        host = mount(dev, tmp_path / "host")
        img = host / "vm.img"
        sh("truncate", "-s", "256M", str(img))
        sh(f"mkfs.{guest_fs}", "-q", "-F", "-J", "size=32", str(img))
        m = mount(loopdev(img), tmp_path / "guest")
        sh("sync")
        return img, m

    return make


def reflink_backup(cli: Callable[..., Result], repo: Path, img: Path) -> dict[str, object]:
    r = cli("backup", "--json", "--provider", "reflink", str(img), repo=repo)
    assert r.code == 0, r.err
    res: dict[str, object] = json.loads(r.out)
    assert res["consistency"] == "crash-consistent"
    return res


@pytest.mark.parametrize(("host_fs", "guest_fs"), [("xfs", "ext4"), ("btrfs", "ext4"), ("xfs", "ext3")])
def test_a_clone_of_a_running_guest_restores_every_commit_after_its_journal_replay(
    host_fs: str, guest_fs: str, guest: Guest, cli: Callable[..., Result], repo: Path, tmp_path: Path,
    start_writers: Writers, loopdev: Callable[..., str], mount: Callable[..., Path],
) -> None:  # fmt: skip
    img, m = guest(host_fs, guest_fs)
    journals = start_writers(m)
    files = fresh_files(m, 8, 1 << 20, seed=3)  # fsync'ed: their allocations are in the journal only
    before = time.time()
    res = reflink_backup(cli, repo, img)
    (region,) = res["partitions"]  # type: ignore[misc]
    assert region["filesystem"] == guest_fs and region["imaged"] == "used blocks" and region["recovery"]
    assert int(res["bytes_read"]) < 256 << 19  # type: ignore[call-overload]
    shown = cli("show", "latest", repo=repo)
    assert "crash-consistent" in shown.out and "journal holds committed transactions" in shown.out
    out = tmp_path / "restored.img"
    r = cli("restore", "latest", str(out), "--fsck", repo=repo)
    assert r.code == 0, r.err
    assert "clean after its journal replay" in r.out and "no block in use was backed up as free" in r.out
    dev = loopdev(out)
    check = mount(dev, tmp_path / "check")  # the kernel replays the journal, as when the VM boots
    for name, data in files.items():
        assert (check / name).read_bytes() == data, f"{name} lost"
    writers.check_sqlite(check / "app.db", writers.committed_before(journals["sqlite"], before))
    writers.check_log(check / "append.log", writers.committed_before(journals["log"], before), crashed=True)
    writers.check_blocks(check / "big.bin")
    sh("umount", str(check))
    sh("e2fsck", "-fn", dev)


def test_fsck_names_the_loss_of_a_map_that_ignores_the_journal(
    guest: Guest, cli: Callable[..., Result], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    loopdev: Callable[..., str], mount: Callable[..., Path],
) -> None:  # fmt: skip
    """The defect itself, with the journal rule taken out: fresh fsync'ed files restore as zeros,
    and restore --fsck fails (51) naming the bytes backed up as free. So the checks above can fail."""
    img, m = guest("xfs", "ext4")
    files = fresh_files(m, 8, 1 << 20, seed=4)
    disk_only = ext.ExtMap.free_extents
    monkeypatch.setattr(ext.ExtMap, "free_extents", lambda self, settled=False: disk_only(self, True))
    reflink_backup(cli, repo, img)
    out = tmp_path / "restored.img"
    r = cli("restore", "latest", str(out), "--fsck", repo=repo)
    assert r.code == 51 and "backed up as free (data lost)" in r.err, r.err
    check = mount(loopdev(out), tmp_path / "check")
    assert any((check / name).read_bytes() != data for name, data in files.items())


def test_a_dead_machines_disk_is_crash_consistent_with_the_plain_provider(
    guest: Guest, cli: Callable[..., Result], repo: Path, tmp_path: Path
) -> None:
    img, m = guest("xfs", "ext4")
    fresh_files(m, 4, 1 << 20, seed=5)
    dead = tmp_path / "dead.img"
    sh("cp", "--sparse=always", str(img), str(dead))  # what a power cut leaves on the disk
    r = cli("backup", "--json", str(dead), repo=repo)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["provider"] == "plain" and res["consistency"] == "crash-consistent"
    assert any("crash-consistent" in n and "restore --fsck" in n for n in res["notes"])
    assert json.loads(cli("show", "--json", "latest", repo=repo).out)["consistency"] == "crash-consistent"


FIEMAP = 0xC020660B


def extents(path: Path) -> list[tuple[int, int, int]]:
    """(logical, physical, length) of a file's extents, from the kernel (FIEMAP)."""
    count = 64
    buf = bytearray(struct.pack("<QQIIII", 0, 1 << 62, 1, 0, count, 0) + bytes(56 * count))
    with open(path, "rb") as f:
        fcntl.ioctl(f.fileno(), FIEMAP, buf)
    mapped = struct.unpack_from("<I", buf, 20)[0]
    out = []
    for k in range(mapped):
        logical, physical, length = struct.unpack_from("<QQQ", buf, 32 + 56 * k)
        out.append((logical, physical, length))
    return out


def test_the_live_map_is_read_after_the_settling_freeze_so_journal_only_allocations_are_imaged(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path],
    no_writeback: None,
) -> None:  # fmt: skip
    """Files fsync'ed before the live backup began: their allocations are in the journal only, not
    in the bitmaps on disk (checked), and their writes were never traced. Every block they use at
    the freeze is in the image."""
    img = tmp_path / "live.img"
    sh("truncate", "-s", "256M", str(img))
    sh("mkfs.ext4", "-q", "-F", str(img))
    m = mount(loopdev(img), tmp_path / "live")
    sh("sync")
    files = fresh_files(m, 8, 1 << 20, seed=6)
    data = img.read_bytes()  # the disk as the device has it (the loop's backing file)
    disk_map = ext.probe(lambda o, n: data[o : o + n], len(data))
    assert disk_map is not None
    free = list(disk_map.free_extents(settled=True))
    placed = {name: extents(m / name) for name in files}
    in_free = [(n, p) for n, ex in placed.items() for _, p, _ in ex if any(o <= p < o + k for o, k in free)]
    assert in_free, "the test needs blocks that the bitmaps on disk still hold as free"
    r = cli("backup", "--json", str(img), repo=repo)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["provider"] == "freeze_trace" and res["consistency"] == "clean"
    assert res["partitions"][0]["imaged"] == "used blocks" and not res["partitions"][0]["recovery"]
    out = tmp_path / "restored.img"
    assert cli("restore", "latest", str(out), repo=repo).code == 0
    with open(out, "rb") as f:
        for name, content in files.items():
            for logical, physical, length in placed[name]:
                f.seek(physical)
                assert f.read(length)[: len(content) - logical] == content[logical : logical + length], name
    sh("e2fsck", "-fn", str(out))


@pytest.mark.parametrize("fs", ["ntfs", "fat32", "ext4-bigalloc"])
def test_a_bare_filesystem_is_imaged_used_blocks_only(
    fs: str, cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev: Callable[..., str]
) -> None:
    """A partition image (a Windows C: on its own, a FAT stick, bigalloc ext4): its boot sector is
    not taken for an empty MBR, and its used-block map is read."""
    img = tmp_path / "part.img"
    sh("truncate", "-s", "400M", str(img))
    format_and_fill(loopdev(img), fs, tmp_path / "fill", seed=7)
    r = cli("backup", "--json", str(img), repo=repo)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    (region,) = res["partitions"]
    assert region["filesystem"] == ("ext4" if fs.startswith("ext4") else fs) and region["imaged"] == "used blocks"
    assert not region["note"] and res["consistency"] == "clean"
    assert res["bytes_read"] < 64 << 20, f"{res['bytes_read'] >> 20} MiB read of 400"
    out = tmp_path / "restored.img"
    assert cli("restore", "latest", str(out), "--fsck", repo=repo).code == 0
    kind = "ext4" if fs.startswith("ext") else fs
    original, restored = loopdev(img), loopdev(out)
    fsck(restored, kind)
    assert tree(restored, kind, tmp_path / "r") == tree(original, kind, tmp_path / "o")
