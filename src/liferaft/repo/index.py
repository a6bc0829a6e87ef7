"""The merged chunk index, cached locally as one sorted, memory-mapped file.

Lookups are a binary search over fixed-size records in the mapping, so memory does not grow with
the number of chunks (no dict of every chunk). The cache records which index deltas it holds; new
deltas are merged in as a stream, and a delta that disappeared (compaction) forces a rebuild. The
store's deltas are always the truth: the cache can be deleted at any time. Where it cannot be
written (a read-only home in a rescue system, a full disk), a private temporary cache serves the
run instead, rebuilt from the deltas.
"""

from __future__ import annotations

import bisect
import heapq
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

from liferaft.crypto.aead import AuthenticationFailed, Opener
from liferaft.errors import CacheUnwritable, CorruptRepository
from liferaft.format import CACHE_MAGIC, ID_SIZE, INDEX_MAGIC, ChunkId, FormatError, PackId
from liferaft.format import index as fmt
from liferaft.repo import names
from liferaft.store.base import Store

Row = tuple[ChunkId, PackId, int, int, int, int]
INDEX_AD = b"liferaft index delta"


class _Keys:
    """The chunk ids of a mapped cache as a sequence, for bisect."""

    def __init__(self, buf: mmap.mmap | bytes, base: int, count: int) -> None:
        self.buf, self.base, self.count = buf, base, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> bytes:
        at = self.base + i * fmt.ENTRY.size
        return self.buf[at : at + ID_SIZE]


class ChunkIndex:
    def __init__(self, path: Path | None) -> None:
        self._map: mmap.mmap | None = None
        self._packs: list[PackId] = []
        self._keys = _Keys(b"", 0, 0)
        if path is not None and path.stat().st_size:
            with open(path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                npacks, nentries = fmt.header(self._map, CACHE_MAGIC)
            except FormatError:
                self.close()
                raise
            base = fmt.HEADER.size
            self._packs = [PackId(self._map[base + i * ID_SIZE : base + (i + 1) * ID_SIZE]) for i in range(npacks)]
            self._keys = _Keys(self._map, base + npacks * ID_SIZE, nentries)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, cid: bytes) -> fmt.Location | None:
        i = bisect.bisect_left(self._keys, cid)
        if i == len(self._keys) or self._keys[i] != cid:
            return None
        return self._row(i)

    def _row(self, i: int) -> fmt.Location:
        assert self._map is not None
        _, pack_no, offset, length, raw, flags = fmt.ENTRY.unpack_from(self._map, self._keys.base + i * fmt.ENTRY.size)
        return fmt.Location(self._packs[pack_no], offset, length, raw, flags)

    def rows(self) -> Iterator[Row]:
        for i in range(len(self._keys)):
            loc = self._row(i)
            yield ChunkId(self._keys[i]), loc.pack, loc.offset, loc.length, loc.raw_length, loc.flags

    def packs(self) -> list[PackId]:
        return list(self._packs)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


def load_delta(store: Store, opener: Opener, name: str) -> list[Row]:
    try:
        table = fmt.decode(opener.open(store.get(name), INDEX_AD), INDEX_MAGIC)
    except (AuthenticationFailed, FormatError) as exc:
        raise CorruptRepository(f"index delta {name} is unreadable ({exc})") from None
    return [(cid, loc.pack, loc.offset, loc.length, loc.raw_length, loc.flags) for cid, loc in fmt.entries_from(table)]


def _write_cache(path: Path, rows: Iterator[Row]) -> None:
    """Write sorted rows (duplicates dropped) as a cache file, streaming entries via a temp file."""
    packs: dict[PackId, int] = {}
    count = 0
    with tempfile.TemporaryFile(dir=path.parent) as body:
        previous = b""
        for cid, pack, offset, length, raw, flags in rows:
            if cid == previous:
                continue
            previous = cid
            body.write(fmt.ENTRY.pack(cid, packs.setdefault(pack, len(packs)), offset, length, raw, flags))
            count += 1
        body.seek(0)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as out:
                out.write(fmt.HEADER.pack(CACHE_MAGIC, len(packs), count))
                out.write(b"".join(packs))
                while block := body.read(1 << 20):
                    out.write(block)
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):  # a full disk leaves no half cache behind
                tmp.unlink()
            raise


def open_index(store: Store, opener: Opener, cache_dir: Path) -> ChunkIndex:
    """The index of every delta now in the store, via (and refreshing) the cache in cache_dir, or
    via a temporary cache when cache_dir cannot be written."""
    try:
        return _open_cached(store, opener, cache_dir)
    except OSError:
        pass
    try:
        tmp = Path(tempfile.mkdtemp(prefix="liferaft-index-"))
    except OSError as exc:
        raise CacheUnwritable(path=cache_dir, detail=exc.strerror or str(exc)) from None
    try:
        return _open_cached(store, opener, tmp)  # mapped: it outlives the folder's removal
    except OSError as exc:
        raise CacheUnwritable(path=cache_dir, detail=exc.strerror or str(exc)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open_cached(store: Store, opener: Opener, cache_dir: Path) -> ChunkIndex:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path, listing = cache_dir / "index", cache_dir / "index.deltas"
    present = set(store.list(names.INDEX))
    held: set[str] = set()
    if path.exists() and listing.exists():
        held = set(listing.read_text().split())
    if held == present and path.exists():
        try:
            return ChunkIndex(path)
        except FormatError:
            held = set()  # a damaged cache is rebuilt, never trusted
    base = ChunkIndex(None)
    if held and held <= present:
        try:
            base = ChunkIndex(path)
        except FormatError:
            held = set()
    else:
        held = set()
    added = present - held
    try:
        fresh: list[Row] = []
        for name in sorted(added):
            fresh.extend(load_delta(store, opener, name))
        fresh.sort()
        _write_cache(path, heapq.merge(base.rows(), iter(fresh)))
    finally:
        base.close()
    listing.write_text("\n".join(sorted(present)) + "\n")
    return ChunkIndex(path)
