"""Whole disks with real filesystems in MBR (with logical partitions) and GPT tables: backup of
used blocks only, restore, fsck clean, the same files, and used-block maps equal to each
filesystem's own count."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.disk.fsmap import detect
from liferaft.disk.layout import read_layout
from tests.conftest import Result
from tests.disks import Part, free_bytes_by_tool, fsck, make_disk, partition_loop, sh, tree

PARTS = [
    Part("ext2", 16),
    Part("ext4-64", 48),
    Part("ntfs", 24),
    Part("fat16", 24),
    Part("fat32", 40),
    Part("ext3", 24),
    Part("swap", 8),
]


@pytest.mark.parametrize("table", ["gpt", "mbr"])
def test_whole_disk_with_every_filesystem(cli: Callable[..., Result], repo: Path, tmp_path: Path, table: str) -> None:
    disk = tmp_path / "disk.img"
    numbers = make_disk(disk, table, PARTS, tmp_path)
    fd = os.open(disk, os.O_RDONLY)
    try:
        layout = read_layout(lambda o, n: os.pread(fd, n, o), disk.stat().st_size)
    finally:
        os.close(fd)
    assert layout.table == table
    sfdisk = json.loads(sh("sfdisk", "-J", str(disk)))["partitiontable"]["partitions"]
    assert [(p.start // 512, p.size // 512) for p in layout.partitions] == [(int(p["start"]), int(p["size"])) for p in sfdisk]

    r = cli("backup", str(disk), "--json", repo=repo)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    regions = {p["number"]: p for p in res["partitions"]}
    expected_fs = {n: p.fs.split("-")[0] for n, p in zip(numbers, PARTS, strict=True)}
    assert {n: regions[n]["filesystem"] for n in numbers} == expected_fs
    assert res["free_chunks"] > 0
    assert res["bytes_read"] < disk.stat().st_size * 0.6  # free space is neither read nor stored
    # cleanly unmounted filesystems: clean, and no journal or dirty flag makes any of them whole
    assert res["consistency"] == "clean"
    assert all(regions[n]["imaged"] == "used blocks" and not regions[n]["recovery"] for n in numbers)

    shown = cli("show", "latest", repo=repo).out
    labels = {"ext": "lr", "ntfs": "NT", "fat": "FAT", "swap": "sw"}  # as tests/disks.py names them
    for n, part in zip(numbers, PARTS, strict=True):
        prefix = next(v for k, v in labels.items() if part.fs.startswith(k))
        assert f"{prefix}{n}" in shown

    out = tmp_path / "restored.img"
    r = cli("restore", "latest", str(out), "--verify", repo=repo)
    assert r.code == 0, r.err
    allocated = out.stat().st_blocks * 512  # free and zero chunks are holes
    holes = (res["free_chunks"] + res["zero_chunks"]) * (1 << 20)
    assert allocated <= disk.stat().st_size - holes + (64 << 10)  # (+ the file's own extent blocks)
    assert sh("sfdisk", "-d", str(out)).replace(str(out), "X") == sh("sfdisk", "-d", str(disk)).replace(str(disk), "X")
    for n, part in zip(numbers, PARTS, strict=True):
        with partition_loop(disk, n, readonly=True) as a, partition_loop(out, n, readonly=True) as b:
            if part.fs == "swap":
                probe = [sh("blkid", "-p", "-o", "export", d).replace(d, "DEV") for d in (a, b)]
                assert probe[0] == probe[1] and "TYPE=swap" in probe[0]
                continue
            fsck(b, part.fs)
            assert tree(a, part.fs, tmp_path / f"a{n}") == tree(b, part.fs, tmp_path / f"b{n}")
            # the used-block map agrees with the filesystem's own count of free space
            ours, size = free_by_liferaft(a)
            assert ours == free_bytes_by_tool(a, part.fs), part.fs
            assert regions[n]["used"] == size - ours


def free_by_liferaft(dev: str) -> tuple[int, int]:
    """(free bytes by liferaft's used-block map, size) of the filesystem on dev."""
    fd = os.open(dev, os.O_RDONLY)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        fsmap = detect(lambda o, k: os.pread(fd, k, o), size)
        assert fsmap is not None
        return sum(length for _, length in fsmap.free_extents()), size
    finally:
        os.close(fd)


def test_single_filesystem_with_thousands_of_groups(cli: Callable[..., Result], repo: Path, tmp_path: Path, mount) -> None:  # type: ignore[no-untyped-def]
    """A bare ext4 (no partition table) with 1200 block groups, meta_bg and 64-bit descriptors."""
    img = tmp_path / "fs.img"
    sh("truncate", "-s", "300M", str(img))
    sh("mkfs.ext4", "-q", "-F", "-b", "1024", "-g", "256", "-O", "64bit", "-L", "many", str(img))
    assert "meta_bg" in sh("dumpe2fs", "-h", str(img))
    m = mount(str(img), tmp_path / "m", "-o", "loop")
    sh("cp", "-a", "/usr/share/doc/bash", str(m / "doc"))
    (m / "junk").write_bytes(os.urandom(8 << 20))
    sh("sync")
    (m / "junk").unlink()
    sh("umount", str(m))
    res = json.loads(cli("backup", str(img), "--json", repo=repo).out)
    assert res["partitions"][0]["filesystem"] == "ext4"
    free = 300 * 1024 * 1024 - res["partitions"][0]["used"]
    dump = sh("dumpe2fs", "-h", str(img))
    assert "Free blocks:" in dump and free == int(dump.split("Free blocks:")[1].split()[0]) * 1024
    out = tmp_path / "out.img"
    assert cli("restore", "latest", str(out), "--verify", repo=repo).code == 0
    sh("e2fsck", "-fn", str(out))
    a = mount(str(img), tmp_path / "a", "-o", "loop,ro")
    b = mount(str(out), tmp_path / "b", "-o", "loop,ro")
    assert sh("diff", "-r", str(a), str(b)) == ""
