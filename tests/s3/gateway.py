"""The real S3 server of the tests: Ceph's RADOS Gateway on loopback (``tests/s3/ceph-gateway``),
started once per test session when a test asks for it and stopped at the end; each test gets a
bucket of its own, emptied and removed afterwards, and the AWS environment pointing at it."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("ceph-gateway")
TLS_PORT = 7443
DIR = Path(os.environ.get("LIFERAFT_S3_DIR", "/tmp/liferaft-s3"))


@dataclass(frozen=True)
class Gateway:
    endpoint: str
    access_key: str
    secret_key: str
    tls_endpoint: str = f"https://127.0.0.1:{TLS_PORT}"
    ca_bundle: Path = DIR / "tls" / "cert.pem"
    """The self-signed certificate of the https endpoint."""

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    env = {**os.environ, "LIFERAFT_S3_TLS_PORT": str(TLS_PORT)}
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=900, env=env)
    assert started.returncode == 0, f"the Ceph S3 gateway did not start:\n{started.stderr[-3000:]}"
    endpoint, access, secret = started.stdout.strip().splitlines()[-1].split()
    yield Gateway(endpoint, access, secret)
    if not os.environ.get("LIFERAFT_KEEP_S3"):  # a developer may keep it up between runs
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=120)


@pytest.fixture
def bucket(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket's name, with the AWS environment set for the gateway; removed afterwards."""
    for name, value in gateway.env().items():
        monkeypatch.setenv(name, value)
    name = f"t-{uuid.uuid4().hex[:16]}"
    yield name
    import boto3

    s3 = boto3.client("s3", endpoint_url=gateway.endpoint, aws_access_key_id=gateway.access_key,
                      aws_secret_access_key=gateway.secret_key, region_name="us-east-1")  # fmt: skip
    try:
        s3.delete_bucket_policy(Bucket=name)  # a test may have made it append-only
    except s3.exceptions.ClientError:
        pass
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            keys = [
                {"Key": o["Key"], "VersionId": o["VersionId"]} for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.NoSuchBucket:
        pass
    except s3.exceptions.ClientError as exc:  # objects under Object Lock: they go with the gateway's data
        assert exc.response["Error"]["Code"] == "BucketNotEmpty", exc
