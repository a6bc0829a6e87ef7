"""Round trip of the benchmark's system disk (GPT, FAT32 EFI, populated ext4 with stale free
space) and of its next day: both snapshots restore bit-exact, the second stores about what changed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result, sh

BENCH = Path(__file__).parents[2] / "benchmarks"


def test_make_disk_image_round_trip_and_incremental(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    day0, day1 = tmp_path / "day0.img", tmp_path / "day1.img"
    subprocess.run([str(BENCH / "make-disk"), str(day0), "2048"], check=True, capture_output=True)
    sh("cp", "--sparse=always", str(day0), str(day1))
    subprocess.run([str(BENCH / "mutate-disk"), str(day1), "1"], check=True, capture_output=True)
    first = json.loads(cli("backup", str(day0), "--json", repo=repo).out)
    second = json.loads(cli("backup", str(day1), "--json", repo=repo).out)
    # one day of change is ~64 MiB of uploads, a docs copy, 64 MiB of database chunks and a log:
    # far less than the disk, more than nothing
    assert 64 << 20 < second["new_bytes"] < 600 << 20
    assert second["new_bytes"] < first["new_bytes"] / 2
    for snap, image in ((first, day0), (second, day1)):
        out = tmp_path / "restored.img"
        r = cli("restore", snap["snapshot_id"][:12], str(out), "--force", "--verify", repo=repo)
        assert r.code == 0, r.err
        assert sh("cmp", str(out), str(image), check=False) == ""
    assert sh("sfdisk", "-d", str(out)).count("name=") == 2
    assert cli("verify", "--read-data", repo=repo).code == 0
