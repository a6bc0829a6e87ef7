"""The imager's promise to live backups: only a copy of every byte, as read from the source, is
reported as a copy (a copy with free blocks zeroed by an older map must not hide a later write)."""

from __future__ import annotations

import os
from pathlib import Path

from liferaft.ops.imager import Imager
from liferaft.ops.progress import NoProgress
from liferaft.ops.repository import init_repository
from liferaft.source.device import SourceReader
from tests.conftest import FAST_KDF


def test_only_whole_copies_are_reported(tmp_path: Path) -> None:
    src = tmp_path / "src.img"
    src.write_bytes(os.urandom(4 << 20))
    repo = init_repository(str(tmp_path / "repo"), b"pw", cache_root=tmp_path / "cache", cost=FAST_KDF)
    reader = SourceReader(str(src), repo.config.chunk_size)
    im = Imager(repo, reader, NoProgress(), 2)
    seen: list[int] = []
    im.before_read = seen.append
    try:
        assert im.read(0) is not None and im.read(1, ((0, 4096),)) is not None
        assert [i for i, _ in im.read_into_memory([2, 3])] == [2, 3]
        assert seen == [0, 2, 3]  # not chunk 1: its free block was zeroed
        assert im.copy(iter([(1, ((0, 4096),)), (2, ())]), "copy", 2 << 20) == 2 << 20
        assert seen == [0, 2, 3, 2]
    finally:
        im.abort()
        im.close()
        reader.close()
        repo.close()


def test_holes_and_free_chunks_are_never_read(tmp_path: Path) -> None:
    """A sparse image's cost follows its data: chunks wholly in a hole, or holding no used
    block, get their entries without a read."""
    src = tmp_path / "sparse.img"
    with open(src, "wb") as f:
        f.truncate(64 << 20)
        for i in (3, 40):
            f.seek(i << 20)
            f.write(os.urandom(1 << 20))
    repo = init_repository(str(tmp_path / "repo"), b"pw", cache_root=tmp_path / "cache", cost=FAST_KDF)
    reader = SourceReader(str(src), repo.config.chunk_size)
    im = Imager(repo, reader, NoProgress(), 2)
    read: list[int] = []
    plain = reader.read
    reader.read = lambda i: read.append(i) or plain(i)  # type: ignore[method-assign]
    try:
        free = ((0, 1 << 20),)
        jobs = [(i, free if i == 40 else ()) for i in range(64)]  # chunk 40: data, but all free
        assert im.copy(iter(jobs), "copy", 64 << 20) == 1 << 20
        assert read == [3]
        assert im.counts() == (62, 1)  # zero chunks (the holes), free chunks
        assert im.entry(3) == repo.ids.chunk_id(src.read_bytes()[3 << 20 : 4 << 20])
    finally:
        im.abort()
        im.close()
        reader.close()
        repo.close()
