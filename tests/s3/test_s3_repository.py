"""A repository in S3 (the real Ceph RADOS Gateway): backups, restores and verify through it,
and the errors a user meets: wrong keys, a missing bucket, an endpoint that does not answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liferaft.errors import StoreError, StoreTransient
from liferaft.store.open import StoreOptions, open_store
from tests.conftest import Result
from tests.s3.gateway import SCRIPT, Gateway


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
        subprocess.Popen(
            [PYTHON, "-m", "liferaft", "backup", "-q", str(s), "--host", f"host{i}", "--repo", repo],
            env=env,
            stderr=subprocess.PIPE,
        )
        for i, s in enumerate(sources)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    for i, src in enumerate(sources):
        out = tmp_path / "out.img"
        r = cli("restore", "-q", "--force", "--host", f"host{i}", "latest", str(out), "--verify", repo=repo)
        assert r.code == 0, r.err
        assert out.read_bytes() == src.read_bytes()
    assert cli("verify", "-q", "--read-data", repo=repo).code == 0
    listed = json.loads(cli("snapshots", "--json", repo=repo).out)
    assert [s["hostname"] for s in listed] == ["host0", "host1", "host2", "host3"]  # grouped by host
    assert len(json.loads(cli("snapshots", "--json", "--host", "host2", repo=repo).out)) == 1
    # shared chunks stored once: what two uploads of the same new chunk at once stored twice, gc
    # keeps once (the index's copy) and reclaims; then the packs hold no more than a repository
    # that received the four disks one after the other
    for _ in range(3):
        assert cli("gc", "-q", "--safety-margin", "0s", "--repack-below", "1", repo=repo).code == 0
    alone = tmp_path / "alone"
    assert cli("init", repo=alone).code == 0
    for src in sources:
        assert cli("backup", "-q", str(src), repo=alone).code == 0
    one_by_one = sum(p.stat().st_size for p in (alone / "packs").rglob("*") if p.is_file())
    assert bucket_bytes(bucket, "fleet/packs/") <= 1.05 * one_by_one
    assert cli("verify", "-q", "--read-data", repo=repo).code == 0
    for i, src in enumerate(sources):
        out = tmp_path / "out.img"
        assert cli("restore", "-q", "--force", "--host", f"host{i}", "latest", str(out), repo=repo).code == 0
        assert out.read_bytes() == src.read_bytes()


def bucket_bytes(bucket: str, prefix: str) -> int:
    import boto3

    s3 = boto3.client("s3")
    return sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
               for o in page.get("Contents", []))  # fmt: skip


def _paused_backup(src: Path, repo: str, **env: str) -> subprocess.Popen[str]:
    """A backup that stops itself (SIGSTOP) just before its first pack upload."""
    from liferaft.store.faults import PAUSE_ENV
    from tests.conftest import PASSWORD, PYTHON

    full = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD, PAUSE_ENV: "packs/", **env}
    p = subprocess.Popen([PYTHON, "-m", "liferaft", "backup", "-q", str(src), "--repo", repo], env=full, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.05)
    return p


@pytest.fixture
def rgw(gateway: object) -> Iterator[Callable[[str], None]]:
    """kill-rgw / start-rgw on the test gateway; it is running again afterwards, whatever happened."""

    def do(what: str) -> None:
        done = subprocess.run([str(SCRIPT), what], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr

    yield do
    do("start-rgw")


def test_the_gateway_killed_mid_backup_fails_it_cleanly_and_the_next_backup_succeeds(
    bucket: str, rgw: Callable[[str], None], cli: Callable[..., Result], tmp_path: Path
) -> None:
    repo = f"s3://{bucket}/down"
    assert cli("init", repo=repo).code == 0
    src = disk(tmp_path / "disk.img", 24, 8)
    backup = _paused_backup(src, repo, LIFERAFT_STORE_RETRY_S="3")
    rgw("kill-rgw")
    backup.send_signal(signal.SIGCONT)
    _, err = backup.communicate(timeout=300)
    assert backup.returncode == 23 and "did not answer" in err, err  # bounded retries, then a clear failure
    rgw("start-rgw")
    assert json.loads(cli("snapshots", "--json", repo=repo).out) == []  # nothing committed
    assert cli("verify", "-q", "--read-data", repo=repo).code == 0
    assert cli("backup", "-q", str(src), repo=repo).code == 0
    out = tmp_path / "out.img"
    assert cli("restore", "-q", "latest", str(out), "--verify", repo=repo).code == 0
    assert out.read_bytes() == src.read_bytes()


def test_a_backup_rides_out_a_gateway_restart(
    bucket: str, rgw: Callable[[str], None], cli: Callable[..., Result], tmp_path: Path
) -> None:
    repo = f"s3://{bucket}/blip"
    assert cli("init", repo=repo).code == 0
    src = disk(tmp_path / "disk.img", 24, 9)
    backup = _paused_backup(src, repo)  # the default: five minutes of retrying
    rgw("kill-rgw")
    backup.send_signal(signal.SIGCONT)  # its uploads now fail and are retried ...
    rgw("start-rgw")  # ... until the server is back
    _, err = backup.communicate(timeout=600)
    assert backup.returncode == 0, err
    out = tmp_path / "out.img"
    assert cli("restore", "-q", "latest", str(out), "--verify", repo=repo).code == 0
    assert out.read_bytes() == src.read_bytes()


def test_tls_with_a_private_ca_and_without_it(
    gateway: Gateway, bucket: str, cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", gateway.tls_endpoint)
    repo = f"s3://{bucket}/tls"
    refused = cli("init", repo=repo)  # a self-signed certificate no system CA vouches for
    assert refused.code == 21 and "TLS failed" in refused.err and "AWS_CA_BUNDLE" in refused.err, refused.err
    monkeypatch.setenv("AWS_CA_BUNDLE", str(gateway.ca_bundle))
    assert cli("init", repo=repo).code == 0
    src = disk(tmp_path / "disk.img", 6, 12)
    assert cli("backup", "-q", str(src), repo=repo).code == 0
    out = tmp_path / "out.img"
    assert cli("restore", "-q", "latest", str(out), "--verify", repo=repo).code == 0
    assert out.read_bytes() == src.read_bytes()


def test_a_clock_the_server_rejects_is_named(bucket: str, cli: Callable[..., Result]) -> None:
    from tests.conftest import PASSWORD, PYTHON

    repo = f"s3://{bucket}/skew"
    assert cli("init", repo=repo).code == 0
    env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD, "LIFERAFT_STORE_RETRY_S": "1"}
    # libfaketime moves this process's clock two hours ahead; the server allows 15 minutes
    done = subprocess.run(["faketime", "-f", "+2h", PYTHON, "-m", "liferaft", "snapshots", "--repo", repo],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 21 and "clock differs too much" in done.stderr, done.stderr
