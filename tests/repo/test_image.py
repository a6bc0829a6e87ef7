"""The snapshot image reader: bytes at any offset equal the restored image's."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import liferaft
from liferaft.format import FREE_ID, ZERO_ID
from liferaft.repo.image import SnapshotImage
from liferaft.repo.repository import Repository
from tests.conftest import FAST_KDF

CHUNK = 256 * 1024


@dataclass
class Backed:
    repo: Repository
    snapshot_id: str
    restored: bytes


@pytest.fixture(scope="module")
def backed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backed]:
    """A bare ext4 image (free chunks), with files (data), a zeroed stretch and an odd size."""
    tmp = tmp_path_factory.mktemp("image")
    files = tmp / "files"
    files.mkdir()
    for i in range(6):
        (files / f"f{i}").write_bytes(os.urandom(300_000 + i * 77_777))
    img = tmp / "fs.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(files), str(img), "20M"], check=True)
    with open(img, "ab") as f:  # an odd tail past the filesystem: data, then part of a chunk
        f.write(os.urandom(CHUNK + 12345))
    repo = liferaft.init_repository(str(tmp / "repo"), b"pw", chunk_size=CHUNK, cache_root=tmp / "cache", cost=FAST_KDF)
    # one worker: the blobs go into the pack in the image's order whatever the threads' timing
    # (the one-request test counts ranges, and several workers may interleave neighbours)
    result = liferaft.backup(repo, str(img), provider="plain", workers=1)
    out = tmp / "out.img"
    liferaft.restore(repo, result.snapshot_id, str(out))
    yield Backed(repo, result.snapshot_id, out.read_bytes())
    repo.close()


def test_the_image_has_every_kind_of_chunk(backed: Backed) -> None:
    snap = backed.repo.load_snapshot(backed.snapshot_id)
    with SnapshotImage(backed.repo, snap, backed.repo.open_index()) as image:
        kinds = {e if e in (ZERO_ID, FREE_ID) else b"data" for e in image.entries()}
        assert kinds == {ZERO_ID, FREE_ID, b"data"} or kinds == {FREE_ID, b"data"}
        assert FREE_ID in kinds and snap.size % CHUNK


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_reads_equal_the_restored_image(backed: Backed, data: st.DataObject) -> None:
    snap = backed.repo.load_snapshot(backed.snapshot_id)
    size = len(backed.restored)
    with SnapshotImage(backed.repo, snap, backed.repo.open_index(), cache_chunks=3, read_ahead=2) as image:
        for _ in range(6):
            offset = data.draw(st.integers(0, size + 10))
            length = data.draw(st.one_of(st.integers(0, 3 * CHUNK), st.sampled_from([1, CHUNK, 4096])))
            assert image.read_at(offset, length) == backed.restored[offset : offset + length]


def test_reads_in_order_read_ahead_and_stay_bounded(backed: Backed) -> None:
    snap = backed.repo.load_snapshot(backed.snapshot_id)
    with SnapshotImage(backed.repo, snap, backed.repo.open_index(), cache_chunks=4, read_ahead=2) as image:
        step = 64 * 1024
        got = b"".join(image.read_at(at, step) for at in range(0, snap.size, step))
        assert got == backed.restored
        assert len(image._chunks) <= 4


def test_a_restore_reads_blobs_that_follow_each_other_with_one_request(backed: Backed, tmp_path: Path) -> None:
    """A remote store answers one large range far faster than many small ones."""
    from liferaft.store.base import Wrapper

    class Counting(Wrapper):
        ranges = 0

        def get_range(self, name: str, offset: int, length: int) -> bytes:
            Counting.ranges += 1
            return self.inner.get_range(name, offset, length)

    snap = backed.repo.load_snapshot(backed.snapshot_id)
    with SnapshotImage(backed.repo, snap) as image:
        stored = sum(1 for e in image.entries() if e not in (ZERO_ID, FREE_ID))
    honest = backed.repo.store
    backed.repo.store = Counting(honest)
    try:
        out = tmp_path / "out.img"
        liferaft.restore(backed.repo, backed.snapshot_id, str(out))
    finally:
        backed.repo.store = honest
    assert out.read_bytes() == backed.restored
    assert Counting.ranges < stored / 2, (Counting.ranges, stored)
