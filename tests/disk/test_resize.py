"""Whole-disk restores onto other sizes: grow to twice the size (GPT backup moved, last partition
and its filesystem extended) and shrink to the minimum (filesystem shrunk on a staging copy); a
target below the minimum is refused with the minimum named."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.disks import Part, fsck, make_disk, partition_loop, sh, tree


def check_disk(disk: Path, out: Path, fs: str, tmp_path: Path) -> None:
    """The table is valid for its size, both partitions are clean and hold the source's files."""
    verify = sh("sfdisk", "--verify", str(out))
    assert "No errors detected" in verify, verify
    parts = json.loads(sh("sfdisk", "-J", str(out)))["partitiontable"]["partitions"]
    assert len(parts) == 2
    for n, kind in ((1, "fat32"), (2, fs)):
        with partition_loop(disk, n, readonly=True) as a, partition_loop(out, n, readonly=True) as b:
            fsck(b, kind)
            assert tree(a, kind, tmp_path / f"a{n}") == tree(b, kind, tmp_path / f"b{n}")


def fs_size(dev: str, fs: str) -> int:
    if fs == "ext4":
        out = sh("dumpe2fs", "-h", dev)
        count = int(re.search(r"Block count:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        return count * int(re.search(r"Block size:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    out = sh("ntfsinfo", "-f", "-m", dev)  # -f: a resized volume is marked for a Windows check
    clusters = int(re.search(r"Volume Size in Clusters:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    return clusters * int(re.search(r"Cluster Size:\s+(\d+)", out).group(1))  # type: ignore[union-attr]


@pytest.mark.parametrize("fs", ["ext4", "ntfs"])
def test_grow_and_shrink(cli: Callable[..., Result], repo: Path, tmp_path: Path, fs: str) -> None:
    disk = tmp_path / "disk.img"
    make_disk(disk, "gpt", [Part("fat32", 40), Part(fs, 64)], tmp_path)
    size = disk.stat().st_size
    assert cli("backup", str(disk), repo=repo).code == 0

    grown = tmp_path / "grown.img"
    r = cli("restore", "latest", str(grown), "--size", str(2 * size), "--grow", repo=repo)
    assert r.code == 0, r.err
    assert grown.stat().st_size == 2 * size
    check_disk(disk, grown, fs, tmp_path)
    with partition_loop(grown, 2, readonly=True) as dev:
        assert fs_size(dev, fs) > (64 << 20) + size // 2  # the filesystem now fills the larger partition

    plain = tmp_path / "larger.img"  # larger without --grow: only the GPT backup moves
    assert cli("restore", "latest", str(plain), "--size", str(size + (16 << 20)), repo=repo).code == 0
    check_disk(disk, plain, fs, tmp_path)

    small = tmp_path / "small.img"
    too_small = 42 << 20  # 1 MiB left for the last partition (it starts at 41 MiB)
    r = cli("restore", "latest", str(small), "--size", str(too_small), "--shrink", repo=repo)
    assert r.code == 41 and "at least" in r.err, r.err
    assert not small.exists() or small.stat().st_size == 0  # refused before writing
    minimum = int(re.search(r"at least (\d+) bytes", r.err).group(1))  # type: ignore[union-attr]
    assert too_small < minimum < size
    r = cli("restore", "latest", str(small), "--size", str(minimum), "--shrink", "--force", repo=repo)
    assert r.code == 0, r.err
    assert small.stat().st_size == minimum
    check_disk(disk, small, fs, tmp_path)

    r = cli("restore", "latest", str(tmp_path / "s2.img"), "--size", str(size - (8 << 20)), repo=repo)
    assert r.code == 41  # smaller without --shrink is refused


def test_shrink_onto_a_device_full_of_old_data(cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev) -> None:  # type: ignore[no-untyped-def]
    """On a device, blocks the filesystem relies on being zero (unused inode tables, say) must be
    written as zeros, not left holding the device's old bytes."""
    disk = tmp_path / "disk.img"
    make_disk(disk, "gpt", [Part("fat32", 40), Part("ext4", 64)], tmp_path)
    assert cli("backup", str(disk), repo=repo).code == 0
    r = cli("restore", "latest", str(tmp_path / "probe.img"), "--size", str(42 << 20), "--shrink", repo=repo)
    minimum = int(re.search(r"at least (\d+) bytes", r.err).group(1))  # type: ignore[union-attr]
    backing = tmp_path / "device.img"
    with open(backing, "wb") as f:  # exactly the minimum, old data everywhere
        for at in range(0, minimum, 1 << 20):
            f.write(os.urandom(min(1 << 20, minimum - at)))
    dev = loopdev(backing)
    r = cli("restore", "latest", dev, "--shrink", repo=repo)
    assert r.code == 0, r.err
    sh("losetup", "-d", dev)
    check_disk(disk, backing, "ext4", tmp_path)
