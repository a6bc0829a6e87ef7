"""Append-only credentials (a bucket policy that denies deletes, enforced by Ceph RGW): backups
work, forget and gc refuse with a clear message before they change anything."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import boto3

from tests.conftest import Result
from tests.s3.gateway import Gateway
from tests.s3.test_s3_repository import disk


def deny_deletes(gateway: Gateway, bucket: str) -> None:
    s3 = boto3.client("s3", endpoint_url=gateway.endpoint, aws_access_key_id=gateway.access_key,
                      aws_secret_access_key=gateway.secret_key, region_name="us-east-1")  # fmt: skip
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"AWS": ["arn:aws:iam:::user/test"]},
                "Action": ["s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def test_append_only_backs_up_and_refuses_forget_and_gc(
    gateway: Gateway, bucket: str, cli: Callable[..., Result], tmp_path: Path
) -> None:
    repo = f"s3://{bucket}/r"
    assert cli("init", repo=repo).code == 0
    deny_deletes(gateway, bucket)
    src = disk(tmp_path / "disk.img", 8, 7)
    for _ in range(2):
        r = cli("backup", "-q", str(src), repo=repo)
        assert r.code == 0, r.err  # a backup never needs to delete
    forgot = cli("forget", "--keep-last", "1", repo=repo)
    assert forgot.code == 29 and "refuses deletes" in forgot.err and "nothing was changed" in forgot.err, forgot.err
    assert cli("snapshots", "--json", repo=repo).out.count('"id"') == 2
    assert cli("gc", repo=repo).code == 29
    out = tmp_path / "out.img"
    assert cli("restore", "-q", "latest", str(out), "--verify", repo=repo).code == 0
    assert out.read_bytes() == src.read_bytes()
