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
from liferaft.ops.verify import in_share, parse_subset
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


def test_read_data_shares_read_every_pack_once_and_find_damage_in_theirs(tmp_path: Path) -> None:
    repo = liferaft.init_repository(str(tmp_path / "repo"), b"pw", chunk_size=CHUNK, cache_root=tmp_path / "cache", cost=FAST_KDF)
    src = tmp_path / "disk.img"
    for _ in range(8):  # a pack or more per backup
        src.write_bytes(os.urandom(4 * CHUNK))
        liferaft.backup(repo, str(src), provider="plain")
    packs = sorted(p.name for p in (tmp_path / "repo" / "packs").rglob("*") if p.is_file())
    full = liferaft.verify(repo, read_data=True)
    assert full.ok and full.packs == len(packs) >= 8 and not full.subset
    shares = [liferaft.verify(repo, read_data=True, subset=(k, 3)) for k in (1, 2, 3)]
    assert [r.subset for r in shares] == ["1/3", "2/3", "3/3"]
    assert sum(r.packs for r in shares) == len(packs)  # each pack in exactly one share
    assert sum(r.bytes_read for r in shares) == full.bytes_read
    assert all(r.ok for r in shares)
    victim = packs[0]
    k = next(k for k in (1, 2, 3) if in_share(victim, k, 3))
    path = next((tmp_path / "repo" / "packs").rglob(victim))
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    other = liferaft.verify(repo, read_data=True, subset=(k % 3 + 1, 3))
    assert other.status == "clean"  # that pack is not in this share: not read
    mine = liferaft.verify(repo, read_data=True, subset=(k, 3))
    assert mine.status == "damaged" and any(victim[:16] in f for f in mine.found), mine.found
    repo.close()


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "1", "a/b", "-1/2"])
def test_a_bad_share_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="K/N"):
        parse_subset(text)
