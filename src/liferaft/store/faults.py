"""A wrapper that fails on purpose, for tests of failure paths:
- from its ``fail_put_at``-th put on, every put raises ``error``;
- a crash point (``crash_at_write``): just before its Nth write (a put, sync or delete, counted
  across threads from 1), it kills its own process with SIGKILL, as kill -9 or a power cut at
  that moment would. ``open_store`` puts it on top of any store when ``LIFERAFT_CRASH_AT_WRITE``
  is set, so a test can stop a real ``liferaft`` process between any two writes, by count
  rather than by timing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

from liferaft.errors import StoreError
from liferaft.store.base import Store

CRASH_ENV = "LIFERAFT_CRASH_AT_WRITE"


class FaultStore:
    def __init__(self, inner: Store, fail_put_at: int = 0, error: StoreError | None = None, crash_at_write: int = 0) -> None:
        self.inner = inner
        self.location = inner.location
        self.fail_put_at = fail_put_at
        self.error = error
        self.crash_at_write = crash_at_write
        self.puts = 0
        self.writes = 0
        self._lock = threading.Lock()

    def _write(self, put: bool = False) -> None:
        with self._lock:
            self.writes += 1
            self.puts += put
            crash = self.writes == self.crash_at_write
            fail = put and self.error is not None and 0 < self.fail_put_at <= self.puts
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
        if fail:
            assert self.error is not None
            raise self.error

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self._write(put=True)
        self.inner.put(name, data)

    def sync(self) -> None:
        self._write()
        self.inner.sync()

    def get(self, name: str) -> bytes:
        return self.inner.get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(name, offset, length)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def delete(self, name: str) -> None:
        self._write()
        self.inner.delete(name)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def close(self) -> None:
        self.inner.close()
