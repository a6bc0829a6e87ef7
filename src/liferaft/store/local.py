"""A repository in a local folder: one file per object, written atomically.

A file's mtime is the store's clock. Errors a network filesystem (NFS, SMB) gives while its
server is away (a stale handle, a timeout) are transient: ``open_store``'s retry waits them out.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

from liferaft.errors import ObjectMissing, RepositoryFull, StoreError, StoreTransient
from liferaft.store.base import Capabilities, ObjectInfo, check_name, no_lock

_TMP = ".tmp-"
TRANSIENT = frozenset({errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY, errno.ECONNRESET})


def _translate(exc: OSError, what: str) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RepositoryFull(f"{what}: {exc.strerror}")
    if exc.errno in TRANSIENT:
        return StoreTransient(detail=f"{what}: {exc.strerror or exc}")
    return StoreError(f"{what}: {exc.strerror or exc}")


DIRECT_MIN = 4 * 1024 * 1024
"""Objects this large (packs) are written with O_DIRECT: copying them into the page cache cost
more kernel time than compressing them, and they are not read again soon (the read-back compares
them with what is on disk, which is the point)."""
_ALIGN = 4096
_local = threading.local()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _page_aligned(view: memoryview) -> bool:
    """Whether a writable buffer starts on a page boundary (O_DIRECT can write it as it is)."""
    if view.readonly or not view.c_contiguous:
        return False
    anchor = ctypes.c_char.from_buffer(view)
    address = ctypes.addressof(anchor)
    del anchor  # release the export at once, so the caller can release the view
    return address % _ALIGN == 0


def _write_all(fd: int, path: Path, view: memoryview) -> None:
    """Write view to the empty file fd: its aligned bulk with O_DIRECT from a page-aligned buffer
    when it is large, the rest (and everything on filesystems without O_DIRECT) buffered."""
    bulk = len(view) - len(view) % _ALIGN if len(view) >= DIRECT_MIN else 0
    if bulk:
        try:
            dfd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            bulk = 0  # e.g. tmpfs
        else:
            try:
                if _page_aligned(view):  # e.g. a pack buffer: write it as it is
                    _pwrite_all(dfd, view[:bulk], 0)
                else:  # through a page-aligned bounce buffer
                    buf: mmap.mmap | None = getattr(_local, "buf", None)
                    step = 8 * 1024 * 1024
                    if buf is None:
                        buf = _local.buf = mmap.mmap(-1, step)
                    for at in range(0, bulk, step):
                        n = min(step, bulk - at)
                        buf[:n] = view[at : at + n]
                        with memoryview(buf) as aligned:
                            _pwrite_all(dfd, aligned[:n], at)
            finally:
                os.close(dfd)
    _pwrite_all(fd, view[bulk:], bulk)
    # start writeback of what went through the page cache now; sync() waits for it
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self.capabilities = Capabilities(connections=8, conditional_create=True, verified_put=False)
        self._unsynced: set[Path] = set()
        self._emptied: set[Path] = set()
        """Folders an object was deleted from since the last sync."""
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def prepare(self, lock: bool = False) -> None:
        if lock:
            no_lock(self.location)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _translate(exc, f"creating {self.root}") from None

    def set_lock(self, seconds: float, prefixes: tuple[str, ...]) -> None:
        no_lock(self.location)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self._write(name, data, exclusive=False)

    def create(self, name: str, data: bytes) -> bool:
        return self._write(name, data, exclusive=True)

    def _write(self, name: str, data: bytes | bytearray | memoryview, exclusive: bool) -> bool:
        """Write the object via a temporary file; exclusive: link it in only where no object is
        (False when one was)."""
        path = self._path(name)
        tmp = path.with_name(f"{_TMP}{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                with memoryview(data) as view:
                    _write_all(fd, tmp, view)
            finally:
                os.close(fd)
            if not exclusive:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)  # fails where the name exists, atomically
                except FileExistsError:
                    return False
                finally:
                    tmp.unlink()
        except OSError as exc:
            with suppress(OSError):  # never created, or a read-only folder
                tmp.unlink()
            raise _translate(exc, f"writing {path}") from None
        with self._lock:
            self._unsynced.add(path)
        return True

    def sync(self) -> None:
        with self._lock:
            paths, self._unsynced = self._unsynced, set()
            folders, self._emptied = self._emptied, set()
        try:
            for path in sorted(paths):
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # deleted since its put
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for folder in sorted(folders | {p.parent for p in paths}):
                try:
                    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                except FileNotFoundError:
                    continue
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError as exc:
            raise _translate(exc, "flushing the repository to disk") from None

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # NotADirectory: the root is a file
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

    def stat(self, name: str) -> ObjectInfo:
        try:
            st = self._path(name).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(name=name) from None
        except OSError as exc:
            raise _translate(exc, f"reading {name}") from None
        return ObjectInfo(name, st.st_size, st.st_mtime)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise _translate(exc, f"deleting {name}") from None
        with self._lock:
            self._unsynced.discard(path)
            self._emptied.add(path.parent)  # the removal is made durable with the next sync

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix)

        def fail(exc: OSError) -> None:  # os.walk would skip a folder it cannot read: a listing with holes
            if not isinstance(exc, FileNotFoundError):
                raise _translate(exc, f"listing {prefix}")

        for dirpath, dirnames, filenames in os.walk(base, onerror=fail):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for fn in sorted(filenames):
                if fn.startswith(_TMP):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, fn))
                except FileNotFoundError:
                    continue  # deleted while listed
                except OSError as exc:
                    raise _translate(exc, f"listing {rel}") from None
                yield ObjectInfo(f"{rel}/{fn}", st.st_size, st.st_mtime)

    def close(self) -> None:
        pass
