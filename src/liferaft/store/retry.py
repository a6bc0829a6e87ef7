"""A wrapper that retries transient failures (StoreTransient) with jittered exponential backoff
and an overall deadline per call (tenacity). Every other error passes at once. A ``list`` is
retried whole: a listing that failed halfway is never handed on with holes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from liferaft.errors import StoreError, StoreTransient
from liferaft.store.base import ObjectInfo, Store, Wrapper

T = TypeVar("T")


class RetryStore(Wrapper):
    def __init__(
        self, inner: Store, attempts: int = 8, first_delay: float = 0.2, max_delay: float = 20.0, deadline: float = 300.0
    ) -> None:
        super().__init__(inner)
        self.attempts = attempts
        self._retrying = Retrying(
            retry=retry_if_exception_type(StoreTransient),
            wait=wait_exponential_jitter(multiplier=first_delay, max=max_delay, jitter=first_delay),
            stop=stop_after_attempt(attempts) | stop_after_delay(deadline),
            reraise=True,
        )

    def _call(self, fn: Callable[[], T]) -> T:
        return self._retrying(fn)

    def prepare(self, lock: bool = False) -> None:
        self._call(lambda: self.inner.prepare(lock))

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self._call(lambda: self.inner.put(name, data))

    def create(self, name: str, data: bytes) -> bool:
        """A create whose reply was lost and is retried finds its own object: that counts as
        created (the caller compares the content when it must know whose it is)."""
        first = True

        def attempt() -> bool:
            nonlocal first
            again, first = not first, False
            return self.inner.create(name, data) or (again and self._same(name, data))

        return self._call(attempt)

    def _same(self, name: str, data: bytes) -> bool:
        try:
            return self.inner.get(name) == data
        except StoreTransient:
            raise
        except StoreError:
            return False

    def sync(self) -> None:
        self._call(self.inner.sync)

    def get(self, name: str) -> bytes:
        return self._call(lambda: self.inner.get(name))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._call(lambda: self.inner.get_range(name, offset, length))

    def stat(self, name: str) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(name))

    def delete(self, name: str) -> None:
        self._call(lambda: self.inner.delete(name))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return iter(self._call(lambda: list(self.inner.list(prefix))))
