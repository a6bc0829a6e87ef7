"""Backup and restore through the CLI, verified by content."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, sh, write_image


def backup_json(cli: Callable[..., Result], repo: Path, src: Path | str, *options: str) -> dict[str, object]:
    r = cli("backup", str(src), "--json", *options, repo=repo)
    assert r.code == 0, r.err
    return json.loads(r.out)  # type: ignore[no-any-return]


def test_image_file_round_trip_is_bit_exact_and_sparse(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    data = write_image(src, 24 * 1024 * 1024 + 12345)  # a partial last chunk too
    res = backup_json(cli, repo, src)
    assert res["size"] == len(data)
    assert res["zero_chunks"] > 0
    out = tmp_path / "restored.img"
    r = cli("restore", "latest", str(out), "--verify", repo=repo)
    assert r.code == 0, r.err
    assert "verified" in r.out
    assert out.read_bytes() == data
    # zero chunks are holes: the file allocates less than its size
    assert out.stat().st_blocks * 512 < len(data)


def test_incremental_stores_only_what_changed(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    data = bytearray(write_image(src, 32 * 1024 * 1024, seed=3))
    first = backup_json(cli, repo, src)
    change = os.urandom(3 * 1024 * 1024)
    data[5 * 1024 * 1024 : 8 * 1024 * 1024] = change  # three aligned chunks
    src.write_bytes(bytes(data))
    second = backup_json(cli, repo, src)
    assert second["new_chunks"] <= 3 + 1  # the changed chunks and one chunk-map piece
    assert 3 * 1024 * 1024 <= int(second["new_bytes"]) <= 4 * 1024 * 1024
    for snap, want in ((first["snapshot_id"], None), (second["snapshot_id"], bytes(data))):
        out = tmp_path / f"{snap}.img"
        assert cli("restore", str(snap)[:10], str(out), "--verify", repo=repo).code == 0
        if want is not None:
            assert out.read_bytes() == want
    listing = json.loads(cli("snapshots", "--json", repo=repo).out)
    assert [s["id"] for s in listing] == [first["snapshot_id"], second["snapshot_id"]]


def test_no_stored_file_reveals_plaintext(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    write_image(src, 16 * 1024 * 1024, seed=42)
    backup_json(cli, repo, src)
    needle = b"liferaft-secret-42"
    assert needle in src.read_bytes()
    stored = [p for p in repo.rglob("*") if p.is_file()]
    assert len(stored) >= 4  # config, key, pack(s), index, snapshot
    for p in stored:
        assert needle not in p.read_bytes(), p
    for p in (tmp_path / "cache").rglob("*"):
        if p.is_file():
            assert needle not in p.read_bytes(), p


def test_loop_device_with_populated_ext4(cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount) -> None:  # type: ignore[no-untyped-def]
    img = tmp_path / "ext4.img"
    sh("truncate", "-s", "64M", str(img))
    dev = loopdev(img)
    sh("mkfs.ext4", "-q", "-F", "-L", "lrtest", dev)
    mnt = mount(dev, tmp_path / "mnt")
    sh("cp", "-a", "/usr/share/doc/bash", str(mnt / "doc"))
    (mnt / "random.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    # a mounted source is refused by the plain provider, never read half-changed
    r = cli("backup", "--provider", "plain", dev, repo=repo)
    assert r.code == 31 and "in use" in r.err and str(mnt) in r.err
    sh("umount", str(mnt))
    res = backup_json(cli, repo, dev, "--all-blocks")  # bit-exact on request
    assert res["size"] == 64 * 1024 * 1024 and res["free_chunks"] == 0
    # restore onto another loop device of the same size
    img2 = tmp_path / "target.img"
    sh("truncate", "-s", "64M", str(img2))
    dev2 = loopdev(img2)
    r = cli("restore", "latest", dev2, "--verify", repo=repo)
    assert r.code == 0, r.err
    assert sh("cmp", dev, dev2, check=False) == ""
    sh("e2fsck", "-fn", dev2)
    mnt2 = mount(dev2, tmp_path / "mnt2", "-o", "ro")
    assert sh("diff", "-r", "/usr/share/doc/bash", str(mnt2 / "doc")) == ""


def test_progress_goes_to_a_log_as_plain_lines(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from liferaft.cli import render

    src = tmp_path / "disk.img"
    write_image(src, 8 << 20)
    monkeypatch.setattr(render, "LOG_EVERY_S", 0.0)  # a line at every step, not once a minute
    r = cli("backup", str(src), "--json", repo=repo)  # stderr is no terminal here: a log
    assert r.code == 0 and json.loads(r.out)["size"] == 8 << 20  # stdout stays pure JSON
    lines = [line for line in r.err.splitlines() if line.startswith(f"backup {src}: ")]
    assert lines and all(re.search(r": \d+% \(.+ of 8\.0 MiB\), .+/s, about \d+ (s|min) left$", line) for line in lines), r.err
    assert "100% (8.0 MiB of 8.0 MiB)" in lines[-1]
    assert not [line for line in cli("backup", str(src), "-q", repo=repo).err.splitlines() if "%" in line]  # --quiet: none


def test_the_backup_summary_and_show_count_the_same(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    data = bytearray(write_image(src, 12 << 20))
    assert cli("backup", str(src), repo=repo).code == 0
    data[5 << 20 : (5 << 20) + 4096] = os.urandom(4096)  # a small increment: its chunk map costs more than it
    src.write_bytes(bytes(data))
    done = cli("backup", str(src), "--json", repo=repo)
    summary = json.loads(done.out)
    shown = json.loads(cli("show", summary["snapshot_id"], "--json", repo=repo).out)
    for key in ("new_chunks", "new_bytes", "stored_bytes"):
        assert summary[key] == shown["stats"][key], key
    assert summary["new_chunks"] == 1 and summary["map_stored_bytes"] > 0  # said apart, not added in
    text = cli("backup", str(src), repo=repo).out
    assert "new 0 B in 0 chunks, stored 0 B" in text, text
