"""The store contract, checked for every implementation by tests/store/test_contract.py.

Names are '/'-separated relative paths of safe characters ([a-z0-9._-] segments). Contract:
- ``put`` is atomic: a reader sees the whole object or none of it; putting an existing name
  replaces it whole. Full storage raises RepositoryFull and leaves no partial object.
- ``sync`` makes every earlier ``put`` durable (survive a power cut); the repository calls it
  before each commit step, so that nothing is referenced before it is durable.
- ``get`` returns the whole object; ``get_range`` exactly ``length`` bytes from ``offset`` (a
  short object is an error, never a short read). A missing object raises ObjectMissing.
- ``create`` writes an object only if no object of that name exists, atomically against other
  writers where ``capabilities.conditional_create`` says so; False when it existed.
- ``delete`` of a missing object is not an error; a store that may not delete (append-only
  credentials, an object lock) raises DeleteRefused.
- ``list(prefix)`` yields an ``ObjectInfo`` for every object below the folder ``prefix``
  (recursively), in any order, never a partially written object. A listing may lag behind the
  newest puts on some stores: the repository lists again before it calls anything missing.
- ``stat`` gives an object's stored size and the store's time of its last write. Ages (of a
  lease, say) come from these times, the store's clock, never from the client's.
- ``set_lock(seconds, prefixes)``: objects put below those folders from then on are retained
  (Object Lock): the server refuses to delete them before ``ObjectInfo.locked_until`` (which
  ``stat`` reports). ``prepare(lock=True)`` makes a container that can lock. A store without
  Object Lock raises UsageError for both.
- Transient failures raise StoreTransient; ``open_store`` puts a retry in front of every store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn, Protocol

from liferaft.errors import StoreError, UsageError

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise StoreError(f"invalid object name {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    size: int
    mtime: float
    """When the object was last written, by the store's clock (seconds since the epoch)."""
    locked_until: float = 0.0
    """Object Lock: it cannot be deleted before this time (``stat`` only; 0: not locked)."""


def no_lock(location: str) -> NoReturn:
    raise UsageError(
        f"{location} cannot lock objects: Object Lock needs an S3 repository whose bucket has it "
        "(liferaft init s3://NEW-BUCKET --lock-days N creates one)"
    )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a store declares about itself, so that callers need not guess."""

    connections: int = 8
    """Requests worth having in flight at once."""
    conditional_create: bool = True
    """``create`` is atomic against other writers (an exclusive lease can rely on it)."""
    verified_put: bool = False
    """The store checks a put's content itself (a checksum the server verifies), so reading an
    upload back to compare it can be skipped."""


class Store(Protocol):
    location: str
    """Where the store is, for messages."""
    capabilities: Capabilities

    def prepare(self, lock: bool = False) -> None:
        """Make the store's container exist (a folder, a bucket): ``liferaft init`` only.
        lock: one whose objects can be locked (Object Lock)."""
        ...

    def set_lock(self, seconds: float, prefixes: tuple[str, ...]) -> None: ...

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None: ...

    def create(self, name: str, data: bytes) -> bool: ...

    def sync(self) -> None: ...

    def get(self, name: str) -> bytes: ...

    def get_range(self, name: str, offset: int, length: int) -> bytes: ...

    def stat(self, name: str) -> ObjectInfo: ...

    def delete(self, name: str) -> None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def close(self) -> None: ...


class Wrapper:
    """A store in front of another: every call goes to ``inner`` unless a subclass changes it."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.location = inner.location
        self.capabilities = inner.capabilities

    def prepare(self, lock: bool = False) -> None:
        self.inner.prepare(lock)

    def set_lock(self, seconds: float, prefixes: tuple[str, ...]) -> None:
        self.inner.set_lock(seconds, prefixes)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.put(name, data)

    def create(self, name: str, data: bytes) -> bool:
        return self.inner.create(name, data)

    def sync(self) -> None:
        self.inner.sync()

    def get(self, name: str) -> bytes:
        return self.inner.get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def close(self) -> None:
        self.inner.close()
