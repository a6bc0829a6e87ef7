"""S3 Object Lock (compliance mode, enforced by Ceph RGW): what a backup writes cannot be deleted
before its date, by liferaft or by anyone with the keys; forget and gc skip what is locked, say
so, and delete it once the date has passed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

import liferaft
from liferaft.errors import DeleteRefused
from liferaft.repo import names
from tests.conftest import PASSWORD, Result
from tests.s3.gateway import Gateway
from tests.s3.test_s3_repository import disk

LOCK_S = 8.0
BOUND_S = 120.0


def client(gateway: Gateway) -> Any:
    return boto3.client("s3", endpoint_url=gateway.endpoint, aws_access_key_id=gateway.access_key,
                        aws_secret_access_key=gateway.secret_key, region_name="us-east-1")  # fmt: skip


def versions(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        found += page.get("Versions", [])
    return found


def test_locked_objects_resist_deletion_until_their_date(
    gateway: Gateway, bucket: str, cli: Callable[..., Result], tmp_path: Path
) -> None:
    repo = f"s3://{bucket}/r"
    made = cli("init", "--lock-days", str(LOCK_S / 86400), repo=repo)
    assert made.code == 0 and "Object Lock" in made.out, made.err
    src = disk(tmp_path / "disk.img", 8, 3)
    assert cli("backup", "-q", str(src), repo=repo).code == 0
    s3 = client(gateway)
    packs = versions(s3, bucket, "r/packs/")
    assert packs
    head = s3.head_object(Bucket=bucket, Key=packs[0]["Key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    snap = s3.head_object(Bucket=bucket, Key=versions(s3, bucket, "r/snapshots/")[0]["Key"])
    assert snap["ObjectLockMode"] == "COMPLIANCE"
    until = snap["ObjectLockRetainUntilDate"].timestamp()  # written last, so released last
    # the server refuses to delete a locked version, whoever asks
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=packs[0]["Key"], VersionId=packs[0]["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with liferaft.open_repository(repo, PASSWORD.encode()) as r, pytest.raises(DeleteRefused):
        r.store.delete(packs[0]["Key"].removeprefix("r/"))
    # forget keeps the locked snapshot and says until when
    kept = cli("forget", "latest", "--json", repo=repo)
    assert kept.code == 0, kept.err
    (fate,) = json.loads(kept.out)["snapshots"]
    assert fate["keep"] and fate["reasons"][0].startswith("object lock until"), fate
    assert len(json.loads(cli("snapshots", "--json", repo=repo).out)) == 1
    # once the date has passed (by the server's clock: deletes are refused until then)
    deadline = time.monotonic() + BOUND_S
    while time.time() < until + 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert cli("forget", "latest", repo=repo).code == 0
    assert json.loads(cli("snapshots", "--json", repo=repo).out) == []
    for _ in range(2):
        assert cli("gc", "--safety-margin", "0s", repo=repo).code == 0
    assert versions(s3, bucket, "r/packs/") == []  # every version gone: the space is free


def test_gc_skips_locked_packs_keeps_their_record_and_the_repository_consistent(
    gateway: Gateway, bucket: str, cli: Callable[..., Result], tmp_path: Path
) -> None:
    repo = f"s3://{bucket}/r"
    s3 = client(gateway)
    assert cli("init", "--lock-days", "1", repo=repo).code == 0
    assert cli("settings", "--lock-days", "0", repo=repo).code == 0
    src = disk(tmp_path / "disk.img", 8, 4)
    with liferaft.open_repository(repo, PASSWORD.encode()) as r:
        r.store.set_lock(600, (names.PACKS,))  # packs retained, the snapshot not: only GC meets the lock
        liferaft.backup(r, str(src), provider="plain")
    assert cli("forget", "latest", repo=repo).code == 0
    assert cli("gc", "--safety-margin", "0s", repo=repo).code == 0
    second = cli("gc", "--safety-margin", "0s", "--json", repo=repo)
    result = json.loads(second.out)
    assert second.code == 0 and result["locked"] == len(versions(s3, bucket, "r/packs/")) > 0
    assert result["deleted"] == 0 and result["locked_until"] > time.time() + 300
    shown = cli("gc", "--safety-margin", "0s", repo=repo)
    assert "under Object Lock until" in shown.err, shown.err
    assert versions(s3, bucket, "r/condemned/")  # kept: a run after the date deletes by it
    assert cli("verify", repo=repo).code == 0


def test_a_bucket_without_object_lock_is_named(gateway: Gateway, bucket: str, cli: Callable[..., Result]) -> None:
    repo = f"s3://{bucket}/r"
    assert cli("init", repo=repo).code == 0
    refused = cli("settings", "--lock-days", "7", repo=repo)
    assert refused.code != 0 and "without Object Lock" in refused.err and "new bucket" in refused.err, refused.err
