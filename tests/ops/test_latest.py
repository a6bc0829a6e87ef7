"""'latest' through the library API takes the same guard as the command: a repository holding
two machines' disks refuses a bare 'latest' in restore, verify and show, instead of restoring the
newest disk of any machine."""

from __future__ import annotations

from pathlib import Path

import pytest

import liferaft
from liferaft.errors import AmbiguousLatest
from liferaft.ops.resize import restore_resized
from tests.conftest import PASSWORD, write_image


def test_library_latest_never_picks_another_machines_disk(tmp_path: Path) -> None:
    location = str(tmp_path / "repo")
    liferaft.init_repository(location, PASSWORD.encode())
    repo = liferaft.open_repository(location, PASSWORD.encode(), tmp_path / "cache")
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    write_image(a, 4 << 20, seed=1)
    write_image(b, 4 << 20, seed=2)
    liferaft.backup(repo, str(a))
    newest = liferaft.backup(repo, str(b))
    for call in (
        lambda: liferaft.restore(repo, "latest", str(tmp_path / "out.img")),
        lambda: restore_resized(repo, "latest", str(tmp_path / "out2.img"), size=8 << 20, grow=True),
        lambda: liferaft.verify(repo, "latest"),
        lambda: liferaft.show(repo, "latest"),
    ):
        with pytest.raises(AmbiguousLatest):
            call()
    assert not (tmp_path / "out.img").exists() and not (tmp_path / "out2.img").exists()
    # an id prefix still names one snapshot
    assert liferaft.restore(repo, newest.snapshot_id[:12], str(tmp_path / "out.img")).snapshot_id == newest.snapshot_id
    assert (tmp_path / "out.img").read_bytes() == b.read_bytes()
