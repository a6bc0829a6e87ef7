"""The one place a store stack is composed from a repository location and options.

Every store gets a retry in front (jittered backoff, a deadline per call); a crash point goes on
top when the crash tests ask for one (``faults.CRASH_ENV``), or a pause point
(``faults.PAUSE_ENV``). A new kind of store is a module
with a class that meets ``base.Store`` (and passes tests/store/test_contract.py), plus one entry
in ``SCHEMES``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liferaft.format import units
from liferaft.store.base import Store
from liferaft.store.faults import CRASH_ENV, PAUSE_ENV, FaultStore
from liferaft.store.limit import LimitStore
from liferaft.store.local import LocalStore
from liferaft.store.memory import MemoryStore
from liferaft.store.retry import RetryStore

LIMIT_ENV = "LIFERAFT_UPLOAD_LIMIT"
RETRY_ENV = "LIFERAFT_STORE_RETRY_S"
RETRY_DEADLINE_S = 300.0


@dataclass(frozen=True, slots=True)
class StoreOptions:
    retry_attempts: int = 30
    """Attempts of one call at most (with the deadline, whichever ends first; delays grow to 20 s)."""
    retry_first_delay: float = 0.2
    retry_deadline: float = RETRY_DEADLINE_S
    """Seconds one call may spend retrying before its transient error stands."""
    crash_at_write: int = 0
    """A crash point (tests): the process kills itself just before this write; 0 for none."""
    pause_before: str = ""
    """A pause point (tests): the process stops itself before it first puts a name with this prefix."""
    upload_limit: int = 0
    """Bytes per second the run may write (0: no cap)."""

    @classmethod
    def from_env(cls) -> StoreOptions:
        """``LIFERAFT_STORE_RETRY_S``: how long a call keeps retrying a storage that does not
        answer (default 300 s); and the test points."""
        crash_at = os.environ.get(CRASH_ENV, "")
        deadline = os.environ.get(RETRY_ENV, "")
        try:
            retry = float(deadline) if deadline else RETRY_DEADLINE_S
        except ValueError:
            from liferaft.errors import UsageError

            raise UsageError(f"{RETRY_ENV}={deadline!r} is not a number of seconds") from None
        return cls(
            retry_deadline=retry,
            crash_at_write=int(crash_at) if crash_at.isdigit() else 0,
            pause_before=os.environ.get(PAUSE_ENV, ""),
            upload_limit=_size_env(LIMIT_ENV),
        )


def _size_env(name: str) -> int:
    text = os.environ.get(name, "")
    if not text:
        return 0
    try:
        return units.parse_size(text)
    except ValueError as e:
        from liferaft.errors import UsageError

        raise UsageError(f"{name}: {e}") from None


def _local(rest: str) -> Store:
    return LocalStore(rest)


def _memory(rest: str) -> Store:
    return MemoryStore()


def _s3(rest: str) -> Store:
    from liferaft.store.s3 import S3Store  # boto3 loads only for an S3 repository

    bucket, _, prefix = rest.partition("/")
    if not bucket:
        from liferaft.errors import UsageError

        raise UsageError("an S3 repository is s3://BUCKET or s3://BUCKET/PREFIX")
    return S3Store(bucket, prefix)


SCHEMES: dict[str, Callable[[str], Store]] = {"file": _local, "memory": _memory, "s3": _s3}


def open_store(location: str, options: StoreOptions | None = None) -> Store:
    """A store for 'file:///path', 'memory://' or a plain path (a local folder), with its
    wrappers."""
    options = options or StoreOptions.from_env()
    store: Store = RetryStore(
        _open(location), attempts=options.retry_attempts, first_delay=options.retry_first_delay, deadline=options.retry_deadline
    )
    if options.upload_limit:
        store = LimitStore(store, options.upload_limit)
    if options.crash_at_write or options.pause_before:
        store = FaultStore(store, crash_at_write=options.crash_at_write, pause_before=options.pause_before)
    return store


def local_folder(location: str) -> Path | None:
    """The folder of a local repository location ('file:///x' or a path), else None."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return Path(location)
    return Path(rest) if scheme == "file" else None


def _open(location: str) -> Store:
    scheme, sep, rest = location.partition("://")
    if not sep:
        return LocalStore(location)
    try:
        factory = SCHEMES[scheme]
    except KeyError:
        from liferaft.errors import UsageError

        raise UsageError(f"unknown repository scheme {scheme!r}: use a path or one of {sorted(SCHEMES)}") from None
    return factory(rest)
