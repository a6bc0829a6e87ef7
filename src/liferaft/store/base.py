"""The store contract, checked for every implementation by tests/store/test_contract.py.

Names are '/'-separated relative paths of safe characters ([a-z0-9._-] segments). Contract:
- ``put`` is atomic: a reader sees the whole object or none of it; putting an existing name
  replaces it whole. Full storage raises RepositoryFull and leaves no partial object.
- ``sync`` makes every earlier ``put`` durable (survive a power cut); the repository calls it
  before each commit step, so that nothing is referenced before it is durable.
- ``get`` returns the whole object; ``get_range`` exactly ``length`` bytes from ``offset`` (a
  short object is an error, never a short read). A missing object raises ObjectMissing.
- ``delete`` of a missing object is not an error.
- ``list(prefix)`` yields every name below the folder ``prefix`` (recursively), in any order,
  never a partially written object.
- ``size`` is the stored length. Transient failures raise StoreTransient; wrappers may retry them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

from liferaft.errors import StoreError

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise StoreError(f"invalid object name {name!r}")
    return name


class Store(Protocol):
    location: str
    """Where the store is, for messages."""

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None: ...

    def sync(self) -> None: ...

    def get(self, name: str) -> bytes: ...

    def get_range(self, name: str, offset: int, length: int) -> bytes: ...

    def size(self, name: str) -> int: ...

    def delete(self, name: str) -> None: ...

    def list(self, prefix: str) -> Iterator[str]: ...

    def close(self) -> None: ...
