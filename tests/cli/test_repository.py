"""The embedded default repository, keys, and damage that verify and restore must catch."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.ops.repository import Defaults
from tests.conftest import Result, write_image


@pytest.fixture
def defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Defaults:
    d = Defaults(tmp_path / "default" / "repository", tmp_path / "default" / "password")
    monkeypatch.setattr(Defaults, "for_user", classmethod(lambda cls: d))
    return d


def test_first_backup_creates_the_default_repository(cli: Callable[..., Result], defaults: Defaults, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 6 << 20)
    r = cli("backup", str(src), password=None)
    assert r.code == 0, r.err
    assert "created the default repository" in r.err and f"a new password, kept in {defaults.password_file}" in r.err
    assert (defaults.repository / "config").exists()
    assert defaults.password_file.stat().st_mode & 0o777 == 0o600
    # later runs find it and its password with no options at all
    assert cli("backup", str(src), password=None).code == 0
    listing = json.loads(cli("snapshots", "--json", password=None).out)
    assert len(listing) == 2
    out = tmp_path / "out.img"
    assert cli("restore", "latest", str(out), "--verify", password=None).code == 0
    assert out.read_bytes() == data
    # a user-given password still works for the default repository
    pw = defaults.password_file.read_text().strip()
    assert cli("snapshots", password=pw).code == 0
    assert cli("snapshots", password="wrong").code == 12


def test_default_repository_with_a_chosen_password(cli: Callable[..., Result], defaults: Defaults, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    write_image(src, 2 << 20)
    r = cli("backup", str(src), password="mine")
    assert r.code == 0 and "the password you gave" in r.err
    assert not defaults.password_file.exists()
    r = cli("snapshots", password=None)
    assert r.code == 13


def test_keys_add_list_remove(cli: Callable[..., Result], repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFERAFT_NEW_PASSWORD", "second")
    r = cli("key", "add", "--label", "laptop", "--json", repo=repo)
    assert r.code == 0, r.err
    new_id = json.loads(r.out)["id"]
    keys = json.loads(cli("key", "list", "--json", repo=repo).out)
    assert len(keys) == 2 and {k["label"] for k in keys} == {"initial", "laptop"}
    assert cli("snapshots", password="second", repo=repo).code == 0
    # the key in use cannot be removed, nor the last one
    r = cli("key", "remove", new_id, password="second", repo=repo)
    assert r.code == 18 and "in use" in r.err
    assert cli("key", "remove", new_id[:8], repo=repo).code == 0
    assert cli("snapshots", password="second", repo=repo).code == 12
    only = json.loads(cli("key", "list", "--json", repo=repo).out)[0]["id"]
    r = cli("key", "remove", only, repo=repo)
    assert r.code == 18 and ("last key" in r.err or "in use" in r.err)


def test_damaged_pack_is_found_by_verify_and_refused_by_restore(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    write_image(src, 8 << 20, seed=9)
    assert cli("backup", str(src), repo=repo).code == 0
    assert cli("verify", "--read-data", repo=repo).code == 0
    pack = max((p for p in (repo / "packs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # one flipped byte inside a blob
    pack.write_bytes(bytes(raw))
    assert cli("verify", repo=repo).code == 0  # structure is intact
    r = cli("verify", "--read-data", repo=repo)
    assert r.code == 50 and "does not match its name" in r.out
    r = cli("restore", "latest", str(tmp_path / "out.img"), repo=repo)
    assert r.code == 17 and "damaged" in r.err
    assert not list(tmp_path.glob("out.img*"))  # no half image under the target's name, no partial file
    pack.unlink()
    r = cli("verify", repo=repo)
    assert r.code == 50 and "missing" in r.out


def test_a_damaged_snapshot_hides_no_other(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    write_image(a, 2 << 20, seed=3)
    data_b = write_image(b, 2 << 20, seed=4)
    assert cli("backup", str(a), repo=repo).code == 0
    assert cli("backup", str(b), repo=repo).code == 0
    damaged = next(p for p in (repo / "snapshots").rglob("*") if p.is_file() and p.stat().st_size and "a.img" in
                   json.loads(cli("show", p.name[:12], "--json", repo=repo).out)["source"])  # fmt: skip
    damaged.write_bytes(b"garbage")
    r = cli("snapshots", "--json", repo=repo)
    assert r.code == 17 and f"snapshot {damaged.name[:12]} does not match its name" in r.err
    assert [s["source"] for s in json.loads(r.out)] == [str(b)]  # the readable one is still listed
    out = tmp_path / "out.img"
    r = cli("restore", "latest", str(out), repo=repo)  # the damaged one may be of any source
    assert r.code == 19 and "1 source (" in r.err and "1 unreadable of unknown source" in r.err, r.err
    r = cli("restore", "latest", str(out), "--source", str(b), repo=repo)
    assert r.code == 0 and "left out of 'latest'" in r.err, r.err
    assert out.read_bytes() == data_b
    assert cli("backup", str(b), repo=repo).code == 0  # and backups go on
    assert cli("verify", repo=repo).code == 50


def test_latest_is_chosen_per_source(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    data_a, data_b = write_image(a, 3 << 20, seed=1), write_image(b, 2 << 20, seed=2)
    monkeypatch.chdir(tmp_path)
    assert cli("backup", "a.img", repo=repo).code == 0  # relative: recorded as the absolute path
    assert cli("backup", str(b), repo=repo).code == 0
    out = tmp_path / "out.img"
    # two sources: 'latest' alone could restore the wrong disk, so it is refused, naming both
    for cmd in (("restore", "latest", str(out)), ("show", "latest"), ("verify", "latest")):
        r = cli(*cmd, repo=repo)
        assert r.code == 19 and f"{a}" in r.err and f"{b}" in r.err and "--source" in r.err, cmd
    assert not out.exists()
    assert cli("restore", "latest", str(out), "--source", "a.img", "--verify", repo=repo).code == 0
    assert out.read_bytes() == data_a
    assert cli("restore", "latest", str(out), "--force", "--source", str(b), "--host", os.uname().nodename, repo=repo).code == 0
    assert out.read_bytes() == data_b
    listing = json.loads(cli("snapshots", "--json", "--source", str(a), repo=repo).out)
    assert [s["source"] for s in listing] == [str(a)]
    assert json.loads(cli("show", "latest", "--json", "--source", str(b), repo=repo).out)["source"] == str(b)
    # an id names one snapshot whatever the sources; a selection it does not match is refused
    assert cli("show", listing[0]["id"][:8], repo=repo).code == 0
    r = cli("show", listing[0]["id"][:8], "--source", str(b), repo=repo)
    assert r.code == 15 and "--source" in r.err
    assert cli("restore", "latest", str(out), "--force", "--host", "elsewhere", repo=repo).code == 15


def test_an_unwritable_cache_falls_back_to_a_temporary_one(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 3 << 20)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))  # as a read-only home in a rescue system
    assert cli("backup", str(src), repo=repo).code == 0
    out = tmp_path / "out.img"
    r = cli("restore", "latest", str(out), "--verify", repo=repo)
    assert r.code == 0, r.err
    assert out.read_bytes() == data
    assert not list(Path(tempfile.gettempdir()).glob("liferaft-index-*"))  # the temporary cache is gone
    # nowhere to write at all: a clear error, nothing half done
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    r = cli("restore", "latest", str(tmp_path / "again.img"), repo=repo)
    assert r.code == 24 and "XDG_CACHE_HOME" in r.err and str(blocker / "cache") in r.err
    assert not (tmp_path / "again.img").exists()
