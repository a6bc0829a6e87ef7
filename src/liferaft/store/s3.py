"""A repository in S3-compatible object storage (AWS S3, Ceph RGW, MinIO, B2, Wasabi):
``s3://bucket/prefix``, one object per repository object, through boto3.

Endpoint, region and credentials come from the standard AWS environment and files
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``~/.aws/config``, ``AWS_CA_BUNDLE``). Addressing is path-style where an endpoint is given (what
S3-compatible servers expect), virtual-hosted on AWS; ``LIFERAFT_S3_ADDRESSING=path|virtual``
overrides it. Every put carries Content-MD5, which the server verifies, so the packer skips its
read-back (``verified_put``); ``create`` is a PUT with ``If-None-Match: *``. Object Lock:
``set_lock`` gives every later PUT below the chosen folders a COMPLIANCE retention date; the
bucket then keeps versions, so ``delete`` removes every version of the name (a plain DELETE
would only hide a locked object behind a delete marker), and the server refuses it while a
version is retained (DeleteRefused). A PUT is durable
when it returns, so ``sync`` has nothing to do. Times are the server's ``Last-Modified``, in
whole seconds (what HEAD gives). Retries are ``open_store``'s (botocore's own are off):
throttling (503 SlowDown), timeouts and lost connections are StoreTransient.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError, SSLError  # type: ignore[import-untyped]

from liferaft.errors import DeleteRefused, ObjectMissing, StoreError, StoreTransient, UsageError
from liferaft.store.base import Capabilities, ObjectInfo, check_name

CONNECTIONS = 16
"""Requests in flight at most (``LIFERAFT_S3_CONNECTIONS`` changes it)."""
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "500",
        "502",
        "503",
        "504",
    }
)
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"})
EXISTS_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
Failure = (ClientError, BotoCoreError)


def _code(exc: Exception) -> str:
    """The S3 error code of a failed request ('NoSuchKey', '404', ...); '' for a network error."""
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


class _ViewReader(io.RawIOBase):
    """A seekable file over a buffer, so that a pack goes out without a copy (boto3 takes a
    memoryview only as a file)."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view, self._at = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, out: Any) -> int:
        n = max(0, min(len(out), len(self._view) - self._at))
        out[:n] = self._view[self._at : self._at + n]
        self._at += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._at = offset + (0 if whence == io.SEEK_SET else self._at if whence == io.SEEK_CUR else len(self._view))
        return self._at

    def tell(self) -> int:
        return self._at


def _connections() -> int:
    text = os.environ.get("LIFERAFT_S3_CONNECTIONS", "")
    if not text:
        return CONNECTIONS
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"LIFERAFT_S3_CONNECTIONS={text!r}: give a number of connections, 1 or more")
    return int(text)


def _client(endpoint: str | None, connections: int) -> Any:
    addressing = os.environ.get("LIFERAFT_S3_ADDRESSING") or (
        "path" if endpoint or os.environ.get("AWS_ENDPOINT_URL") else "auto"
    )
    config = Config(
        max_pool_connections=connections,
        retries={"max_attempts": 1, "mode": "standard"},
        # the payload is not hashed into the signature (as over HTTPS): Content-MD5 carries its
        # integrity, AES-GCM its authenticity, and the SHA-256 would cost a second pass over every pack
        s3={"addressing_style": addressing, "payload_signing_enabled": False},
        connect_timeout=10,
        read_timeout=60,
        request_checksum_calculation="when_required",  # Content-MD5 instead; Ceph 16 verifies no trailers
        response_checksum_validation="when_required",
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint, region_name=region or session.region_name or "us-east-1", config=config)


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", endpoint: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        connections = _connections()
        self.capabilities = Capabilities(connections=connections, conditional_create=True, verified_put=True)
        self._s3 = _client(endpoint, connections)
        self._lock_s = 0.0
        self._lock_prefixes: tuple[str, ...] = ()
        self._versioned: bool | None = None

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{check_name(name)}" if self.prefix else check_name(name)

    def _fail(self, exc: Exception, what: str, name: str = "") -> StoreError:
        """The StoreError for a failed request (botocore's ClientError or BotoCoreError)."""
        if isinstance(exc, ClientError):
            code = _code(exc)
            message = str(exc.response.get("Error", {}).get("Message") or code)
            if code in MISSING_CODES and name:
                return ObjectMissing(name=name)
            if code == "NoSuchBucket":
                return StoreError(f"the bucket {self.bucket} does not exist: check the name, or create it with 'liferaft init'")
            if code in TRANSIENT_CODES:
                return StoreTransient(detail=f"{what}: {code} ({message})")
            if code in CREDENTIAL_CODES:
                return StoreError(
                    f"{what}: {code}: the server refused these credentials "
                    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE)"
                )
            if code == "RequestTimeTooSkewed":
                return StoreError(f"{what}: this machine's clock differs too much from the server's: set the clock (NTP)")
            return StoreError(f"{what}: {code} ({message})")
        if isinstance(exc, SSLError):
            return StoreError(f"{what}: TLS failed ({exc}): for a private CA, point AWS_CA_BUNDLE at its certificate")
        return StoreTransient(detail=f"{what}: {exc}")  # no answer: connection refused or lost, a timeout

    def prepare(self, lock: bool = False) -> None:
        """Create the bucket if it does not exist (liferaft init); lock: with Object Lock, and
        an existing bucket must have it."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except Failure as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._fail(exc, f"checking the bucket {self.bucket}") from None
            try:
                self._s3.create_bucket(Bucket=self.bucket, **({"ObjectLockEnabledForBucket": True} if lock else {}))
            except Failure as exc:
                raise self._fail(exc, f"creating the bucket {self.bucket}") from None
        if lock:
            self._require_lock()

    def _require_lock(self) -> None:
        try:
            conf = self._s3.get_object_lock_configuration(Bucket=self.bucket)["ObjectLockConfiguration"]
            enabled = conf.get("ObjectLockEnabled") == "Enabled"
        except Failure as exc:
            if _code(exc) not in ("ObjectLockConfigurationNotFoundError", "InvalidRequest", "404"):
                raise self._fail(exc, f"reading the Object Lock of {self.bucket}") from None
            enabled = False
        if not enabled:
            raise StoreError(
                f"the bucket {self.bucket} was made without Object Lock, which S3 cannot add later: "
                "use a new bucket (liferaft init s3://NEW-BUCKET --lock-days N makes it with Object Lock)"
            )

    def set_lock(self, seconds: float, prefixes: tuple[str, ...]) -> None:
        self._require_lock()
        self._lock_s, self._lock_prefixes = seconds, tuple(p + "/" for p in prefixes)

    def _put(self, name: str, data: bytes | bytearray | memoryview, **extra: str) -> None:
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        body = data if isinstance(data, (bytes, bytearray)) else _ViewReader(memoryview(data).cast("B"))
        lock: dict[str, Any] = {}
        if self._lock_s and name.startswith(self._lock_prefixes):
            until = datetime.fromtimestamp(time.time() + self._lock_s, UTC)
            lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
        self._s3.put_object(Bucket=self.bucket, Key=self._key(name), Body=body, ContentMD5=md5, **extra, **lock)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        try:
            self._put(name, data)
        except Failure as exc:
            raise self._fail(exc, f"writing {name}") from None

    def create(self, name: str, data: bytes) -> bool:
        try:
            self._put(name, data, IfNoneMatch="*")
        except Failure as exc:
            if _code(exc) in EXISTS_CODES:
                return False
            raise self._fail(exc, f"creating {name}") from None
        return True

    def sync(self) -> None:
        pass  # a PUT is durable once it returns

    def get(self, name: str) -> bytes:
        try:
            data: bytes = self._s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except Failure as exc:
            raise self._fail(exc, f"reading {name}", name) from None
        return data

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        if length == 0:
            self.stat(name)
            return b""
        try:
            reply = self._s3.get_object(Bucket=self.bucket, Key=self._key(name), Range=f"bytes={offset}-{offset + length - 1}")
            data: bytes = reply["Body"].read()
        except Failure as exc:
            if _code(exc) != "InvalidRange":
                raise self._fail(exc, f"reading {name}", name) from None
            data = b""
        if len(data) != length:
            raise StoreError(f"{name} is shorter than expected ({offset}+{length} bytes)")
        return data

    def stat(self, name: str) -> ObjectInfo:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=self._key(name))
        except Failure as exc:
            raise self._fail(exc, f"reading {name}", name) from None
        until = head.get("ObjectLockRetainUntilDate")
        locked = until.timestamp() if until is not None and head.get("ObjectLockMode") else 0.0
        return ObjectInfo(name, int(head["ContentLength"]), float(int(head["LastModified"].timestamp())), locked)

    def _keeps_versions(self) -> bool:
        if self._versioned is None:
            try:
                status = self._s3.get_bucket_versioning(Bucket=self.bucket).get("Status")
            except Failure as exc:
                raise self._fail(exc, f"reading the versioning of {self.bucket}") from None
            self._versioned = status in ("Enabled", "Suspended")
        return self._versioned

    def delete(self, name: str) -> None:
        key = self._key(name)
        try:
            if not self._keeps_versions():
                self._s3.delete_object(Bucket=self.bucket, Key=key)
                return
            errors = []
            for page in self._s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key):
                versions = [
                    {"Key": key, "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                    if v["Key"] == key
                ]
                if versions:  # a page holds at most 1000, what one DeleteObjects takes
                    reply = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": versions, "Quiet": True})
                    errors += reply.get("Errors", [])
        except Failure as exc:
            if _code(exc) == "AccessDenied":
                raise DeleteRefused(name=name) from None  # append-only credentials, or a lock
            raise self._fail(exc, f"deleting {name}") from None
        if any(e.get("Code") == "AccessDenied" for e in errors):
            raise DeleteRefused(name=name)  # a version still under Object Lock
        if errors:
            raise StoreError(f"deleting {name}: {errors[0].get('Code')} ({errors[0].get('Message')})")

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._key(prefix) + "/"
        cut = len(self.prefix) + 1 if self.prefix else 0
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][cut:], int(obj["Size"]), float(int(obj["LastModified"].timestamp())))
        except Failure as exc:
            raise self._fail(exc, f"listing {prefix}") from None

    def close(self) -> None:
        self._s3.close()
