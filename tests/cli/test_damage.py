"""Damage never spreads: a damaged or missing pack is found, recorded, named with what it costs,
and healed by the next backup of the same source; one bad index delta or a stray file never
stops the repository. Each case through the CLI, on a real repository folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result, write_image


def packs(repo: Path) -> list[Path]:
    return sorted(p for p in (repo / "packs").rglob("*") if p.is_file())


def restores(cli: Callable[..., Result], repo: Path, sid: str, want: bytes, tmp_path: Path) -> bool:
    out = tmp_path / "check.img"
    r = cli("restore", sid, str(out), "--force", repo=repo)
    return r.code == 0 and out.read_bytes() == want


def snapshot_ids(cli: Callable[..., Result], repo: Path) -> list[str]:
    return [s["id"] for s in json.loads(cli("snapshots", "--json", repo=repo).out)]


def blob_of(repo: Path, tmp_path: Path, chunk: int, snapshot: int = -1) -> tuple[Path, int]:
    """(pack file, an offset inside the blob) of image chunk ``chunk`` of a snapshot (or of the
    first stored chunk after it, where it is a zero or free one)."""
    import liferaft
    from liferaft.format import UNSTORED
    from liferaft.repo.image import SnapshotImage
    from tests.conftest import PASSWORD

    with liferaft.open_repository(str(repo), PASSWORD.encode(), cache_root=tmp_path / "probe") as r:
        sid = sorted(r.snapshots(), key=lambda s: s[1].time)[snapshot][0]
        index = r.open_index()
        with SnapshotImage(r, r.load_snapshot(sid), index) as image:
            cid = next(c for c in list(image.entries())[chunk:] if c not in UNSTORED)
        loc = r.locate(index, cid)
        index.close()
    h = loc.pack.hex()
    return repo / "packs" / h[:2] / h, loc.offset + loc.length // 2


def flip(path: Path, at: int, n: int = 4) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        data = bytearray(f.read(n))
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))


def test_flipped_bytes_in_a_pack_are_named_recorded_and_healed_by_the_next_backup(
    cli: Callable[..., Result], repo: Path, tmp_path: Path
) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 8 << 20, seed=3)
    assert cli("backup", str(src), repo=repo).code == 0
    (pack,) = packs(repo)
    flip(pack, 100_000)  # inside the first blobs, past the pack's header
    again = json.loads(cli("backup", str(src), "--json", repo=repo).out)
    assert again["new_bytes"] == 0  # nothing can tell a flip without reading: it deduplicates
    checked = cli("verify", "--read-data", "--json", repo=repo)
    assert checked.code == 50, checked.err
    found = json.loads(checked.out)
    assert found["status"] == "damaged" and found["recorded"].startswith("damaged/")
    assert {loss["snapshot_id"] for loss in found["lost"]} == set(snapshot_ids(cli, repo))  # both snapshots named
    (loss, _) = found["lost"]
    assert loss["bytes"] % (1 << 20) == 0 and 0 < loss["bytes"] < 8 << 20  # the damaged chunks' ranges, no more
    assert loss["ranges"][0][1] - loss["ranges"][0][0] == loss["bytes"] and loss["partitions"] == ["the filesystem"]
    text = cli("verify", "--read-data", repo=repo)
    assert text.code == 50 and "lost: snapshot" in text.out and "a new backup of that source stores them again" in text.out
    healed = json.loads(cli("backup", str(src), "--json", repo=repo).out)
    assert 0 < healed["new_bytes"] < len(data)  # only the damaged chunks are stored again
    after = cli("verify", "--read-data", "--json", repo=repo)
    assert after.code == 52 and json.loads(after.out)["status"] == "healed", after.out
    for sid in snapshot_ids(cli, repo):  # every snapshot that shared them restores again
        assert restores(cli, repo, sid, data, tmp_path)


def test_a_deleted_or_cut_pack_is_noticed_by_the_next_backup_which_heals_it(
    cli: Callable[..., Result], repo: Path, tmp_path: Path
) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 8 << 20, seed=4)
    assert cli("backup", str(src), repo=repo).code == 0
    first = snapshot_ids(cli, repo)[0]
    (pack,) = packs(repo)
    pack.unlink()
    healed = json.loads(cli("backup", str(src), "--json", repo=repo).out)
    assert healed["new_bytes"] > 0  # stored again, not deduplicated against a pack that is gone
    assert restores(cli, repo, first, data, tmp_path)  # the old snapshot is whole again
    assert cli("verify", "--read-data", repo=repo).code == 52
    for p in packs(repo):  # now cut the newest pack short
        os.truncate(p, p.stat().st_size // 2)
    cut = json.loads(cli("backup", str(src), "--json", repo=repo).out)
    assert cut["new_bytes"] > 0
    for sid in snapshot_ids(cli, repo):
        assert restores(cli, repo, sid, data, tmp_path)


def test_a_damaged_index_delta_or_a_stray_file_never_stops_the_repository(
    cli: Callable[..., Result], repo: Path, tmp_path: Path
) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 6 << 20, seed=5)
    assert cli("backup", str(src), repo=repo).code == 0
    (delta,) = sorted((repo / "index").iterdir())
    flip(delta, delta.stat().st_size // 2)
    (repo / "index" / ".DS_Store").write_bytes(b"")
    (repo / "snapshots" / "a snapshot (conflicted copy)").write_bytes(b"junk")
    (repo / "snapshots" / ("0" * 64)).write_bytes(b"")
    cache = tmp_path / "cache"
    for c in cache.rglob("index"):
        c.unlink()  # a cold cache: the delta must be read again
    sid = snapshot_ids(cli, repo)[0]
    out = tmp_path / "out.img"
    r = cli("restore", sid, str(out), repo=repo)
    assert r.code == 0 and out.read_bytes() == data, r.err
    assert "skipped; the packs it named are read from their footers" in r.err
    assert "conflicted copy): not a snapshot" in r.err and ".DS_Store: not a index delta" in r.err
    assert cli("backup", str(src), repo=repo).code == 0
    checked = cli("verify", "--read-data", "--json", repo=repo)
    assert checked.code == 52 and json.loads(checked.out)["unreadable"], checked.out
    refused = cli("gc", "--safety-margin", "0s", repo=repo)
    assert refused.code == 27 and "liferaft repair" in refused.err


def test_a_deleted_index_delta_loses_nothing(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 6 << 20, seed=6)
    assert cli("backup", str(src), repo=repo).code == 0
    for delta in (repo / "index").iterdir():
        delta.unlink()
    for c in (tmp_path / "cache").rglob("index"):
        c.unlink()
    sid = snapshot_ids(cli, repo)[0]
    assert restores(cli, repo, sid, data, tmp_path)  # its pack is intact: read from its footer
    checked = cli("verify", "--read-data", repo=repo)
    assert checked.code == 0, checked.out + checked.err
    assert "found in packs no index delta names" in checked.err and "not in any index" not in checked.out


def test_a_delta_restore_checks_every_chunk_it_needs_before_it_writes(
    cli: Callable[..., Result], repo: Path, tmp_path: Path
) -> None:
    src = tmp_path / "disk.img"
    old = write_image(src, 8 << 20, seed=9)
    target = tmp_path / "target.img"
    target.write_bytes(old)
    new = bytearray(old)
    new[1 << 20 : 3 << 20] = os.urandom(2 << 20)  # two new chunks
    src.write_bytes(bytes(new))
    assert cli("backup", str(src), repo=repo).code == 0
    flip(*blob_of(repo, tmp_path, 2))  # the second of the two chunks the target needs
    r = cli("restore", "latest", str(target), "--delta", repo=repo)
    assert r.code == 17 and "damaged" in r.err, r.err
    assert target.read_bytes() == old  # not a mix of two states: nothing was written


def test_a_damaged_config_or_key_record_is_called_damaged(cli: Callable[..., Result], repo: Path) -> None:
    (key,) = sorted((repo / "keys").iterdir())
    key.write_bytes(key.read_bytes()[:20])
    r = cli("snapshots", repo=repo)
    assert r.code == 17 and "every key record is damaged" in r.err, r.err
    config = repo / "config"
    config.write_bytes(config.read_bytes()[:-5])
    r = cli("snapshots", repo=repo)
    assert r.code == 17 and "its config is damaged" in r.err, r.err
