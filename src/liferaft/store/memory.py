"""A store in a dict: for tests and for the contract suite's reference behaviour. Its clock can
be set (``clock``), so a test can age objects by the store's time without waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from liferaft.errors import ObjectMissing, StoreError
from liferaft.store.base import Capabilities, ObjectInfo, check_name, no_lock


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.location = "memory://"
        self.capabilities = Capabilities()
        self.clock = clock
        self.objects: dict[str, bytes] = {}
        self.mtimes: dict[str, float] = {}
        self._lock = threading.Lock()

    def prepare(self, lock: bool = False) -> None:
        if lock:
            no_lock(self.location)

    def set_lock(self, seconds: float, prefixes: tuple[str, ...]) -> None:
        no_lock(self.location)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        with self._lock:
            self.objects[check_name(name)] = bytes(data)
            self.mtimes[name] = self.clock()

    def create(self, name: str, data: bytes) -> bool:
        with self._lock:
            if check_name(name) in self.objects:
                return False
            self.objects[name], self.mtimes[name] = bytes(data), self.clock()
            return True

    def sync(self) -> None:
        pass

    def get(self, name: str) -> bytes:
        with self._lock:
            try:
                return self.objects[check_name(name)]
            except KeyError:
                raise ObjectMissing(name=name) from None

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        data = self.get(name)[offset : offset + length]
        if len(data) != length:
            raise StoreError(f"{name} is shorter than expected ({offset}+{length} bytes)")
        return data

    def stat(self, name: str) -> ObjectInfo:
        with self._lock:
            try:
                return ObjectInfo(name, len(self.objects[check_name(name)]), self.mtimes[name])
            except KeyError:
                raise ObjectMissing(name=name) from None

    def delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(check_name(name), None)
            self.mtimes.pop(name, None)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = check_name(prefix) + "/"
        with self._lock:
            found = [ObjectInfo(n, len(b), self.mtimes[n]) for n, b in sorted(self.objects.items()) if n.startswith(base)]
        yield from found

    def close(self) -> None:
        pass
