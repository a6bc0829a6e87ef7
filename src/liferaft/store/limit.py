"""A bandwidth cap on what a run writes to its store (``LIFERAFT_UPLOAD_LIMIT``, bytes per second;
the daemon sets it from ``[limits] bandwidth``), so an offsite upload leaves the office line usable.

A token bucket shared by the run's threads: a put waits until its bytes fit in the rate, with at
most one second of burst. Reads are not capped: a restore should go as fast as it can.
"""

from __future__ import annotations

import threading
import time

from liferaft.store.base import Store, Wrapper


class LimitStore(Wrapper):
    def __init__(self, inner: Store, bytes_per_s: int) -> None:
        super().__init__(inner)
        self.rate = float(bytes_per_s)
        self._lock = threading.Lock()
        self._tokens = self.rate
        self._at = time.monotonic()

    def _take(self, n: int) -> None:
        with self._lock:  # one waiter at a time: the bucket is shared fairly enough for a cap
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate) - n
            self._at = now
            if self._tokens < 0:
                time.sleep(-self._tokens / self.rate)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self._take(len(data))
        self.inner.put(name, data)

    def create(self, name: str, data: bytes) -> bool:
        self._take(len(data))
        return self.inner.create(name, data)
