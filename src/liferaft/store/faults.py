"""Wrappers that fail on purpose, for the tests of failure paths. Each fault really fires.

``FaultStore``:
- from its ``fail_put_at``-th put on, every put raises ``error``;
- ``transient_every=k``: every k-th call (of any kind, counted across threads) raises
  StoreTransient; of writes, every other such fault comes after the write was done, as a reply
  lost on the network leaves it, so a retry repeats a write that already happened;
- a crash point (``crash_at_write``): just before its Nth write (a put, create, sync or delete,
  counted across threads from 1), it kills its own process with SIGKILL, as kill -9 or a power
  cut at that moment would. ``open_store`` puts it on top of any store when
  ``LIFERAFT_CRASH_AT_WRITE`` is set, so a test can stop a real ``liferaft`` process between any
  two writes, by count rather than by timing.
- a pause point (``pause_before``): just before it first puts an object whose name starts with
  this, it stops its own process with SIGSTOP, as a suspended laptop or a stalled VM would; the
  test resumes it with SIGCONT. ``LIFERAFT_PAUSE_BEFORE`` sets it through ``open_store``.

``LaggingListStore``: a listing misses every object the first time it would show it, as an
eventually consistent listing can; the repository must list again before it calls anything
missing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from liferaft.errors import StoreError, StoreTransient
from liferaft.store.base import ObjectInfo, Store, Wrapper

CRASH_ENV = "LIFERAFT_CRASH_AT_WRITE"
PAUSE_ENV = "LIFERAFT_PAUSE_BEFORE"
T = TypeVar("T")


class FaultStore(Wrapper):
    def __init__(
        self, inner: Store, fail_put_at: int = 0, error: StoreError | None = None, crash_at_write: int = 0,
        transient_every: int = 0, pause_before: str = "",
    ) -> None:  # fmt: skip
        super().__init__(inner)
        self.pause_before = pause_before
        self.fail_put_at = fail_put_at
        self.error = error
        self.crash_at_write = crash_at_write
        self.transient_every = transient_every
        self.puts = 0
        self.writes = 0
        self.calls = 0
        self.faults = 0
        """Transient faults fired so far."""
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[], T], write: bool = False, put: bool = False) -> T:
        with self._lock:
            self.calls += 1
            self.writes += write
            self.puts += put
            crash = write and self.writes == self.crash_at_write
            fail = put and self.error is not None and 0 < self.fail_put_at <= self.puts
            transient = self.transient_every > 0 and self.calls % self.transient_every == 0
            self.faults += transient
            after = transient and write and self.faults % 2 == 0
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
        if fail:
            assert self.error is not None
            raise self.error
        if transient and not after:
            raise StoreTransient(detail=f"fault {self.faults} (before the call)")
        result = fn()
        if after:
            raise StoreTransient(detail=f"fault {self.faults} (the reply was lost)")
        return result

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        if self.pause_before and name.startswith(self.pause_before):
            self.pause_before = ""
            os.kill(os.getpid(), signal.SIGSTOP)
        self._call(lambda: self.inner.put(name, data), write=True, put=True)

    def create(self, name: str, data: bytes) -> bool:
        return self._call(lambda: self.inner.create(name, data), write=True, put=True)

    def sync(self) -> None:
        self._call(self.inner.sync, write=True)

    def get(self, name: str) -> bytes:
        return self._call(lambda: self.inner.get(name))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._call(lambda: self.inner.get_range(name, offset, length))

    def stat(self, name: str) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(name))

    def delete(self, name: str) -> None:
        self._call(lambda: self.inner.delete(name), write=True)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return iter(self._call(lambda: list(self.inner.list(prefix))))


class LaggingListStore(Wrapper):
    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self._shown: set[str] = set()
        self._lock = threading.Lock()
        self.hidden = 0
        """Objects left out of a listing so far."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        found = list(self.inner.list(prefix))
        with self._lock:
            fresh = {o.name for o in found} - self._shown
            self._shown |= fresh
            self.hidden += len(fresh)
        return iter([o for o in found if o.name not in fresh])
