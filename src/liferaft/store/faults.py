"""A wrapper that fails on purpose: the Nth put raises a chosen error (tests of failure paths)."""

from __future__ import annotations

from collections.abc import Iterator

from liferaft.errors import StoreError
from liferaft.store.base import Store


class FaultStore:
    def __init__(self, inner: Store, fail_put_at: int, error: StoreError) -> None:
        self.inner = inner
        self.location = inner.location
        self.fail_put_at = fail_put_at
        self.error = error
        self.puts = 0

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self.puts += 1
        if self.puts >= self.fail_put_at:
            raise self.error
        self.inner.put(name, data)

    def sync(self) -> None:
        self.inner.sync()

    def get(self, name: str) -> bytes:
        return self.inner.get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(name, offset, length)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def close(self) -> None:
        self.inner.close()
