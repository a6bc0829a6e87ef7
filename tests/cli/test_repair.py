"""`liferaft repair`: the index rebuilt from the packs alone, the good blobs of damaged packs
salvaged, what is still lost named; stopped at every write it loses nothing and a next run
finishes the job."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cli.test_damage import blob_of, flip, packs, restores, snapshot_ids
from tests.conftest import Result, write_image
from tests.crash.test_kill_backup import kill_at_every_write, run


def two_days(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> list[bytes]:
    src = tmp_path / "disk.img"
    first = write_image(src, 12 << 20, seed=7)
    assert cli("backup", str(src), repo=repo).code == 0
    second = bytearray(first)
    second[3 << 20 : 5 << 20] = write_image(tmp_path / "other.img", 2 << 20, seed=8)
    src.write_bytes(bytes(second))
    assert cli("backup", str(src), repo=repo).code == 0
    return [first, bytes(second)]


def cold(tmp_path: Path) -> None:
    for c in (tmp_path / "cache").rglob("index"):
        c.unlink()


def test_repair_rebuilds_an_index_whose_deltas_are_all_gone(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    days = two_days(cli, repo, tmp_path)
    for delta in (repo / "index").iterdir():
        delta.unlink()
    cold(tmp_path)
    dry = json.loads(cli("repair", "--dry-run", "--json", repo=repo).out)
    assert dry["deltas_after"] == 0 and dry["blobs"] > 0 and not list((repo / "index").iterdir())  # wrote nothing
    done = cli("repair", "--json", repo=repo)
    assert done.code == 0, done.err
    result = json.loads(done.out)
    assert result["blobs"] == dry["blobs"] and result["deltas_after"] >= 1 and result["incomplete"] == []
    cold(tmp_path)
    for sid, want in zip(snapshot_ids(cli, repo), days, strict=True):
        assert restores(cli, repo, sid, want, tmp_path)
    checked = cli("verify", "--read-data", repo=repo)
    assert checked.code == 0 and "no index delta names" not in checked.err, checked.out + checked.err
    assert cli("gc", "--safety-margin", "0s", repo=repo).code == 0  # and maintenance runs again


def test_repair_salvages_a_damaged_pack_and_names_what_a_backup_must_heal(
    cli: Callable[..., Result], repo: Path, tmp_path: Path
) -> None:
    days = two_days(cli, repo, tmp_path)
    first, at = blob_of(repo, tmp_path, 0, snapshot=0)  # a chunk both days hold (day 2 changed 3-5 MiB)
    flip(first, at)
    done = json.loads(cli("repair", "--json", repo=repo).out)
    assert done["damaged_blobs"] == 1 and done["salvaged_packs"] == 1 and done["salvaged_blobs"] > 0
    assert {loss["snapshot_id"] for loss in done["incomplete"]} == set(snapshot_ids(cli, repo))  # both share the chunk
    text = cli("repair", "--dry-run", repo=repo).out
    assert "incomplete: snapshot" in text and "a new backup of" in text
    src = tmp_path / "disk.img"
    assert cli("backup", str(src), repo=repo).code == 0  # heals: the damaged chunk is stored again
    for sid, want in zip(snapshot_ids(cli, repo), [*days, days[1]], strict=True):
        assert restores(cli, repo, sid, want, tmp_path)
    for _ in range(2):  # the salvaged pack is no longer indexed: gc removes it
        assert cli("gc", "--safety-margin", "0s", repo=repo).code == 0
    assert first not in packs(repo)
    assert cli("verify", "--read-data", repo=repo).code == 0


def test_a_footer_only_flip_loses_nothing(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    days = two_days(cli, repo, tmp_path)
    first = sorted(packs(repo), key=lambda p: p.stat().st_mtime)[0]
    flip(first, first.stat().st_size - 40)  # inside the sealed footer, past every blob
    checked = cli("verify", "--read-data", repo=repo)
    assert checked.code == 0 and "every blob in it is intact: no data lost" in checked.err, checked.out + checked.err
    done = json.loads(cli("repair", "--json", repo=repo).out)
    assert done["damaged_blobs"] == 0 and done["salvaged_packs"] == 1 and done["incomplete"] == []
    cold(tmp_path)
    for sid, want in zip(snapshot_ids(cli, repo), days, strict=True):
        assert restores(cli, repo, sid, want, tmp_path)


def test_kill_9_at_every_write_of_repair(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    days = two_days(cli, repo, tmp_path)
    for delta in (repo / "index").iterdir():
        delta.unlink()
    kills = kill_at_every_write(("repair", "-q"), repo)
    assert kills >= 3, f"repair made only {kills} writes"
    assert run("repair", "-q", repo=repo).returncode == 0  # a second run finishes the job
    for sid, want in zip(snapshot_ids(cli, repo), days, strict=True):
        assert restores(cli, repo, sid, want, tmp_path)
