"""A wrapper that retries transient failures with exponential backoff (S3 and other networks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from liferaft.errors import StoreTransient
from liferaft.store.base import Store

T = TypeVar("T")


class RetryStore:
    def __init__(self, inner: Store, attempts: int = 5, first_delay: float = 0.2) -> None:
        self.inner = inner
        self.location = inner.location
        self.attempts = attempts
        self.first_delay = first_delay

    def _call(self, fn: Callable[[], T]) -> T:
        delay = self.first_delay
        for attempt in range(self.attempts):
            try:
                return fn()
            except StoreTransient:
                if attempt == self.attempts - 1:
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self._call(lambda: self.inner.put(name, data))

    def sync(self) -> None:
        self._call(self.inner.sync)

    def get(self, name: str) -> bytes:
        return self._call(lambda: self.inner.get(name))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._call(lambda: self.inner.get_range(name, offset, length))

    def size(self, name: str) -> int:
        return self._call(lambda: self.inner.size(name))

    def delete(self, name: str) -> None:
        self._call(lambda: self.inner.delete(name))

    def list(self, prefix: str) -> Iterator[str]:
        return iter(self._call(lambda: list(self.inner.list(prefix))))

    def close(self) -> None:
        self.inner.close()
