"""Restore-level verify: the image digest recorded at backup binds the chunk map to what was
read, so a map whose entries were reordered restores "consistently" and still fails."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import liferaft
from liferaft.errors import VerifyFailed
from liferaft.format import FLAG_META, UNSTORED
from liferaft.format.chunkmap import encode_piece
from liferaft.repo.image import SnapshotImage
from liferaft.repo.writer import BackupWriter
from tests.conftest import FAST_KDF

CHUNK = 256 * 1024


def test_a_reordered_chunk_map_fails_the_image_digest(tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    src.write_bytes(os.urandom(6 * CHUNK))
    repo = liferaft.init_repository(str(tmp_path / "repo"), b"pw", chunk_size=CHUNK, cache_root=tmp_path / "cache", cost=FAST_KDF)
    sid = liferaft.backup(repo, str(src), provider="plain").snapshot_id
    out = tmp_path / "out.img"
    assert liferaft.restore(repo, sid, str(out), verify=True).verified  # the honest map passes
    snap = repo.load_snapshot(sid)
    with SnapshotImage(repo, snap) as image:
        ids = list(image.entries())
    assert len({i for i in ids if i not in UNSTORED}) == 6
    ids[1], ids[4] = ids[4], ids[1]  # every chunk still in the repository, two in each other's place
    forged = BackupWriter(repo, repo.open_index(), "test")
    piece = encode_piece(ids)
    pid = repo.ids.chunk_id(piece)
    forged.put(pid, piece, FLAG_META)
    bad = forged.commit(dataclasses.replace(snap, map_pieces=(pid,), time="2027-01-01T00:00:00.000000Z"))
    with pytest.raises(VerifyFailed, match="digest"):
        liferaft.restore(repo, bad, str(out), force=True, verify=True)
    assert not out.exists() or out.read_bytes() == src.read_bytes()  # the failed restore left the old file
    repo.close()
