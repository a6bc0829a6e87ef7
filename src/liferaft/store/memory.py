"""A store in a dict: for tests and for the contract suite's reference behaviour."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from liferaft.errors import ObjectMissing, StoreError
from liferaft.store.base import check_name


class MemoryStore:
    def __init__(self) -> None:
        self.location = "memory://"
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        with self._lock:
            self.objects[check_name(name)] = bytes(data)

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

    def size(self, name: str) -> int:
        return len(self.get(name))

    def delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(check_name(name), None)

    def list(self, prefix: str) -> Iterator[str]:
        base = check_name(prefix) + "/"
        with self._lock:
            names = sorted(n for n in self.objects if n.startswith(base))
        yield from names

    def close(self) -> None:
        pass
