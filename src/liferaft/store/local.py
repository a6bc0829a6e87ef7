"""A repository in a local folder: one file per object, written atomically."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from liferaft.errors import ObjectMissing, RepositoryFull, StoreError
from liferaft.store.base import check_name

_TMP = ".tmp-"


def _translate(exc: OSError, what: str) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RepositoryFull(f"{what}: {exc.strerror}")
    return StoreError(f"{what}: {exc.strerror or exc}")


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self._unsynced: set[Path] = set()
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        path = self._path(name)
        tmp = path.with_name(f"{_TMP}{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                # start writeback now (it runs while the caller works on), sync() waits for it
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _translate(exc, f"writing {path}") from None
        with self._lock:
            self._unsynced.add(path)

    def sync(self) -> None:
        with self._lock:
            paths, self._unsynced = self._unsynced, set()
        try:
            for path in sorted(paths):
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for folder in sorted({p.parent for p in paths}):
                dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError as exc:
            raise _translate(exc, "flushing the repository to disk") from None

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(name=name) from None
        except OSError as exc:
            raise _translate(exc, f"reading {name}") from None

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ObjectMissing(name=name) from None
        except OSError as exc:
            raise _translate(exc, f"reading {name}") from None
        try:
            data = os.pread(fd, length, offset)
        except OSError as exc:
            raise _translate(exc, f"reading {name}") from None
        finally:
            os.close(fd)
        if len(data) != length:
            raise StoreError(f"{name} is shorter than expected ({offset}+{length} bytes)")
        return data

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            raise ObjectMissing(name=name) from None

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise _translate(exc, f"deleting {name}") from None

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for fn in sorted(filenames):
                if not fn.startswith(_TMP):
                    yield f"{rel}/{fn}"

    def close(self) -> None:
        pass
