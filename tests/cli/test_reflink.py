"""The reflink provider: an image file on XFS and on btrfs, rewritten all the time by a writer,
is backed up from an instant clone; the clone leaves no trace, and every block of the restored
file is whole."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import writers
from tests.cli.test_live import Writers, live_fs, start_writers
from tests.conftest import Result

__all__ = ["live_fs", "start_writers"]


@pytest.mark.parametrize("fs", ["xfs", "btrfs"])
def test_reflink_clone_of_a_busy_image_file(
    fs: str, cli: Callable[..., Result], repo: Path, tmp_path: Path, live_fs, start_writers: Writers
) -> None:  # type: ignore[no-untyped-def]
    _dev, mnt = live_fs(fs, 320)
    start_writers(mnt, 4e6)  # big.bin: 4 KiB blocks rewritten in place, like a VM's disk
    r = cli("backup", "--json", "--provider", "reflink", str(mnt / "big.bin"), repo=repo)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["provider"] == "reflink" and res["source"] == str(mnt / "big.bin")
    assert not list(mnt.glob(".*liferaft-clone*"))  # the clone is gone
    out = tmp_path / "restored.bin"
    assert cli("restore", "latest", str(out), "--verify", repo=repo).code == 0
    assert writers.check_blocks(out) > 0  # whole blocks, some of them rewritten


def test_reflink_on_a_filesystem_without_it_is_a_clear_error(cli: Callable[..., Result], repo: Path, live_fs) -> None:  # type: ignore[no-untyped-def]
    _dev, mnt = live_fs("ext4", 64)
    (mnt / "disk.img").write_bytes(b"x" * 65536)
    r = cli("backup", "--provider", "reflink", str(mnt / "disk.img"), repo=repo)
    assert r.code == 30 and "reflink needs XFS with reflink or btrfs" in r.err
    assert sorted(p.name for p in mnt.iterdir()) == ["disk.img", "lost+found"]
