"""The benchmark's system disk (GPT, FAT32 EFI partition, populated ext4 with stale data in its
free space) and its next day: used-blocks backups restore to clean filesystems with the same files
and store about what changed; --all-blocks restores bit-exact."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result, sh

BENCH = Path(__file__).parents[2] / "benchmarks"


def partition_loop(image: Path, number: int) -> str:
    """A read-only loop device over partition number of image (detached by the caller)."""
    start, sectors = sh("partx", "-g", "-o", "START,SECTORS", "-n", str(number), str(image)).split()
    offset, limit = str(int(start) * 512), str(int(sectors) * 512)
    return sh("losetup", "-f", "--show", "-r", "--offset", offset, "--sizelimit", limit, str(image))


def test_make_disk_round_trip_incremental_and_all_blocks(cli: Callable[..., Result], repo: Path, tmp_path: Path, mount) -> None:  # type: ignore[no-untyped-def]
    day0, day1 = tmp_path / "day0.img", tmp_path / "day1.img"
    made = subprocess.run([str(BENCH / "make-disk"), str(day0), "2048"], check=True, capture_output=True, text=True)
    # the README's first command: only its own one line, no tool's noise (mtools' geometry warning)
    assert made.stderr.endswith("\n") and len(made.stderr.splitlines()) == 1, made.stderr
    assert "geometry" not in made.stderr
    sh("cp", "--sparse=always", str(day0), str(day1))
    subprocess.run([str(BENCH / "mutate-disk"), str(day1), "1"], check=True, capture_output=True)
    first = json.loads(cli("backup", str(day0), "--json", repo=repo).out)
    second = json.loads(cli("backup", str(day1), "--json", repo=repo).out)
    assert first["free_chunks"] > 100  # the stale free space was neither read nor stored
    assert [p["filesystem"] for p in first["partitions"]] == ["fat32", "ext4"]
    # one day of change: ~64 MiB of uploads, a docs copy, 64 MiB of database chunks, a log
    assert 64 << 20 < second["new_bytes"] < 600 << 20
    out = tmp_path / "restored.img"
    r = cli("restore", second["snapshot_id"][:12], str(out), "--verify", repo=repo)
    assert r.code == 0, r.err
    assert sh("sfdisk", "-d", str(out)) == sh("sfdisk", "-d", str(day1)).replace(str(day1), str(out))
    loops = []
    try:
        for image in (day1, out):
            loops.append([partition_loop(image, n) for n in (1, 2)])
        (src_efi, src_root), (dst_efi, dst_root) = loops
        sh("e2fsck", "-fn", dst_root)
        sh("fsck.vfat", "-n", dst_efi)
        a = mount(src_root, tmp_path / "a", "-o", "ro")
        b = mount(dst_root, tmp_path / "b", "-o", "ro")
        assert sh("diff", "-r", "--no-dereference", str(a), str(b)) == ""
        ls = [sh("env", "MTOOLS_SKIP_CHECK=1", "mdir", "-/", "-i", dev, "::/") for dev in (src_efi, dst_efi)]
        assert ls[0].replace(src_efi, "X") == ls[1].replace(dst_efi, "X")
    finally:
        for dev in (d for pair in loops for d in pair):
            subprocess.run(["umount", "-l", dev], capture_output=True)
            subprocess.run(["losetup", "-d", dev], capture_output=True)
    # bit-exact imaging on request
    exact = json.loads(cli("backup", str(day1), "--all-blocks", "--json", repo=repo).out)
    assert exact["free_chunks"] == 0
    r = cli("restore", exact["snapshot_id"][:12], str(out), "--force", "--verify", repo=repo)
    assert r.code == 0, r.err
    assert sh("cmp", str(out), str(day1), check=False) == ""
    assert cli("verify", "--read-data", repo=repo).code == 0
