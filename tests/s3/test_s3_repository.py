"""A repository in S3 (the real Ceph RADOS Gateway): backups, restores and verify through it,
and the errors a user meets: wrong keys, a missing bucket, an endpoint that does not answer."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.errors import StoreError, StoreTransient
from liferaft.store.open import StoreOptions, open_store
from tests.conftest import Result


def disk(path: Path, mib: int, seed: int) -> Path:
    rnd = __import__("random").Random(seed)
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(bytes(1 << 20) if i % 4 == 3 else rnd.randbytes(1 << 20))
    return path


def test_backup_restore_verify_through_s3(bucket: str, cli: Callable[..., Result], tmp_path: Path) -> None:
    repo = f"s3://{bucket}/office"
    assert cli("init", repo=repo).code == 0  # creates the bucket
    src = disk(tmp_path / "disk.img", 40, 1)
    first = cli("backup", "-q", str(src), repo=repo)
    assert first.code == 0, first.err
    with open(src, "r+b") as f:  # a day of change
        f.seek(5 << 20)
        f.write(os.urandom(3 << 20))
    second = cli("backup", "--json", "-q", str(src), repo=repo)
    assert second.code == 0, second.err
    out = tmp_path / "out.img"
    r = cli("restore", "-q", "latest", str(out), "--verify", repo=repo)
    assert r.code == 0, r.err
    assert out.read_bytes() == src.read_bytes()
    check = cli("verify", "-q", "--read-data", repo=repo)
    assert check.code == 0, check.out + check.err
    listed = cli("snapshots", "--json", repo=repo)
    assert listed.code == 0 and listed.out.count('"id"') == 2


def test_wrong_secret_key_is_a_clear_error(bucket: str, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = f"s3://{bucket}"
    assert cli("init", repo=repo).code == 0
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key-0000000000000000000000")
    r = cli("snapshots", repo=repo)
    assert r.code == 21 and "refused these credentials" in r.err, r.err


def test_a_missing_bucket_is_named(bucket: str, cli: Callable[..., Result]) -> None:
    r = cli("snapshots", repo=f"s3://{bucket}-none")
    assert r.code == 21 and f"{bucket}-none does not exist" in r.err, r.err


def test_an_endpoint_that_does_not_answer_is_transient_then_fails(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: connection refused
    store = open_store(f"s3://{bucket}", StoreOptions(retry_attempts=3, retry_first_delay=0))
    with pytest.raises(StoreTransient):
        store.get("config")
    with pytest.raises(StoreError):
        store.put("config", b"x")


def test_forget_and_gc_on_s3(bucket: str, cli: Callable[..., Result], tmp_path: Path) -> None:
    repo = f"s3://{bucket}/gc"
    assert cli("init", repo=repo).code == 0
    a, b = disk(tmp_path / "a.img", 16, 4), disk(tmp_path / "b.img", 16, 5)
    for src in (a, b):
        assert cli("backup", "-q", str(src), repo=repo).code == 0
    forgot = cli("forget", "--keep-last", "1", "--source", str(b), repo=repo)  # b's group keeps b; a's is untouched
    assert forgot.code == 0 and "forgot 0 snapshots" in forgot.out, forgot.out
    assert cli("forget", "--keep-last", "1", "--host", "nobody", repo=repo).code == 0
    first = cli("gc", "--json", "-q", "--safety-margin", "0s", repo=repo)
    assert first.code == 0 and '"condemned": 0' in first.out  # everything is referenced
    out = tmp_path / "out.img"
    assert cli("restore", "-q", "--source", str(a), "latest", str(out), "--verify", repo=repo).code == 0
    assert out.read_bytes() == a.read_bytes()


def test_concurrent_backups_of_overlapping_disks_into_one_bucket(bucket: str, cli: Callable[..., Result], tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import PASSWORD, PYTHON

    repo = f"s3://{bucket}/fleet"
    assert cli("init", repo=repo).code == 0
    shared = disk(tmp_path / "shared.img", 12, 6).read_bytes()
    sources = []
    for i in range(4):  # each disk: 12 MiB in common, 6 of its own
        src = tmp_path / f"host{i}.img"
        src.write_bytes(shared + disk(tmp_path / f"own{i}.img", 6, 10 + i).read_bytes())
        sources.append(src)
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
    procs = [
        subprocess.Popen([PYTHON, "-m", "liferaft", "backup", "-q", str(s), "--repo", repo], env=env, stderr=subprocess.PIPE)
        for s in sources
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    for src in sources:
        out = tmp_path / "out.img"
        r = cli("restore", "-q", "--force", "--source", str(src), "latest", str(out), "--verify", repo=repo)
        assert r.code == 0, r.err
        assert out.read_bytes() == src.read_bytes()
    assert cli("verify", "-q", "--read-data", repo=repo).code == 0
