"""Restore of one partition, and delta restore onto a target that changed after the backup."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result
from tests.disks import Part, fsck, make_disk, partition_loop, sh, tree


def test_partition_restore_to_a_file(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    make_disk(disk, "gpt", [Part("fat32", 40), Part("ext4", 40)], tmp_path)
    assert cli("backup", str(disk), repo=repo).code == 0
    out = tmp_path / "p2.img"
    r = cli("restore", "latest", str(out), "--partition", "2", "--verify", repo=repo)
    assert r.code == 0, r.err
    assert out.stat().st_size == 40 << 20
    fsck(str(out), "ext4")
    with partition_loop(disk, 2, readonly=True) as a:
        assert tree(a, "ext4", tmp_path / "a") == tree(str(out), "ext4", tmp_path / "b")
    r = cli("restore", "latest", str(tmp_path / "x.img"), "--partition", "9", repo=repo)
    assert r.code == 2 and "no partition 9" in r.err


def test_delta_restore_writes_only_what_differs(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    make_disk(disk, "gpt", [Part("ext4", 96)], tmp_path)
    r = cli("backup", str(disk), "--json", repo=repo)
    assert r.code == 0, r.err
    target = tmp_path / "target.img"
    assert cli("restore", "latest", str(target), repo=repo).code == 0
    # the target drifts after the backup: a file changes, another appears
    with partition_loop(target, 1) as dev:
        m = tmp_path / "m"
        m.mkdir()
        sh("mount", dev, str(m))
        try:
            (m / "payload.bin").write_bytes(os.urandom(300_000))
            (m / "new.bin").write_bytes(os.urandom(3 << 20))
        finally:
            sh("umount", str(m))
    r = cli("restore", "latest", str(target), "--delta", "--verify", "--json", repo=repo)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    full = json.loads(cli("restore", "latest", str(tmp_path / "full.img"), "--json", repo=repo).out)
    full_written = full["bytes_written"]
    assert res["chunks_read"] > 0
    # the drift touched a few chunks (the file, its new neighbour, inodes, bitmaps, journal), and
    # of those only the differing 4 KiB blocks are written: less than the chunks themselves
    assert 0 < res["chunks_written"] <= 5 and res["bytes_written"] < full_written / 2, (res, full_written)
    assert res["bytes_written"] < res["chunks_written"] * (1 << 20), res
    with partition_loop(disk, 1, readonly=True) as a, partition_loop(target, 1, readonly=True) as b:
        fsck(b, "ext4")
        assert tree(a, "ext4", tmp_path / "a") == tree(b, "ext4", tmp_path / "b")
    # nothing differs any more: a second delta restore writes nothing
    again = json.loads(cli("restore", "latest", str(target), "--delta", "--json", repo=repo).out)
    assert again["bytes_written"] == 0
    # a delta restore needs an existing target
    r = cli("restore", "latest", str(tmp_path / "none.img"), "--delta", repo=repo)
    assert r.code == 40 and "existing" in r.err


def test_a_whole_disk_restored_to_a_device_has_its_partitions_known(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev: Callable[..., str]
) -> None:
    disk = tmp_path / "disk.img"
    make_disk(disk, "gpt", [Part("fat32", 40), Part("ext4", 40)], tmp_path)
    assert cli("backup", str(disk), repo=repo).code == 0
    blank = tmp_path / "blank.img"
    sh("truncate", "-s", str(disk.stat().st_size), str(blank))
    # a loop device without partition scanning refuses to re-read its table: the note says what to run
    dev = loopdev(blank)
    r = cli("restore", "latest", dev, "--json", repo=repo)
    assert r.code == 0, r.err
    assert json.loads(r.out)["notes"] == [
        f"the kernel did not re-read the partition table of {dev} (Invalid argument): "
        f"run 'partx -u {dev}' before using its partitions"
    ]
    sh("partx", "-u", dev)  # as the note says: the restored partitions appear, and are whole
    try:
        fsck(f"{dev}p2", "ext4")
        with partition_loop(disk, 2, readonly=True) as a:
            assert tree(a, "ext4", tmp_path / "a") == tree(f"{dev}p2", "ext4", tmp_path / "b")
    finally:
        sh("partx", "-d", dev)
    # one that scans partitions re-reads it at once: no note
    scanned = loopdev(tmp_path / "blank.img", partscan=True)
    r = cli("restore", "latest", scanned, "--force", "--json", repo=repo)
    assert r.code == 0 and json.loads(r.out)["notes"] == [], r.err
