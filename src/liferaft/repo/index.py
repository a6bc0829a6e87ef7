"""The merged chunk index, cached locally as one sorted file, read a block per lookup.

Memory does not grow with the number of chunks: only the fences (the id of every 64th entry,
half a byte per chunk) and the pack ids are held; a lookup bisects the fences, reads the one
block of 64 entries from the file (through the page cache, not into this process's memory) and
bisects it. The cache file names the deltas it holds inside itself, so that the cache and its
list are one unit, replaced whole by a rename: any number of processes may refresh it at once,
and whichever file is in place describes itself truly. New deltas are merged in as streams, a
bounded batch at a time; a delta that disappeared (compaction) forces a rebuild. The store's
deltas are always the truth: the cache can be deleted at any time, and ``refresh`` (lists again,
merges what is new) runs before a chunk is called missing. Where the cache folder cannot be
written (a read-only home in a rescue system, a full disk), a private temporary cache serves
the run instead, rebuilt from the deltas.
"""

from __future__ import annotations

import bisect
import heapq
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from liferaft.crypto.aead import AuthenticationFailed, Opener, Sealer
from liferaft.errors import CacheUnwritable, CorruptRepository, ObjectMissing, StoreError
from liferaft.format import CACHE_MAGIC, ID_SIZE, INDEX_MAGIC, ChunkId, FormatError, PackId
from liferaft.format import index as fmt
from liferaft.repo import names
from liferaft.repo.damage import Damage
from liferaft.repo.damage import load as load_damage
from liferaft.repo.listing import valid_names
from liferaft.repo.packer import read_footer
from liferaft.store.base import ObjectInfo, Store

Row = tuple[ChunkId, PackId, int, int, int, int]
INDEX_AD = b"liferaft index delta"
BATCH_BYTES = 64 * 1024 * 1024
"""Delta plaintext merged into the cache per pass: bounds memory when many deltas are new."""
_READ = 1024 * 1024


class _Keys:
    """Fixed-size records' leading ids as a sequence, for bisect."""

    def __init__(self, buf: bytes, stride: int, count: int) -> None:
        self.buf, self.stride, self.count = buf, stride, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> bytes:
        at = i * self.stride
        return self.buf[at : at + ID_SIZE]


def _pread(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise FormatError("index cache: shorter than its header says")
    return data


class _View:
    """One cache file, open. Immutable; a refresh makes a new one."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(self.fd).st_size
            if size < fmt.HEADER.size + fmt.TAIL.size:
                raise FormatError("index cache: too short")
            head = os.pread(self.fd, fmt.HEADER.size, 0)
            (text_length,) = fmt.TAIL.unpack(os.pread(self.fd, fmt.TAIL.size, size - fmt.TAIL.size))
            npacks, self.count = fmt.cache_layout(head, text_length, size)
            at = fmt.HEADER.size
            table = _pread(self.fd, npacks * ID_SIZE, at)
            self.packs = [PackId(table[i * ID_SIZE : (i + 1) * ID_SIZE]) for i in range(npacks)]
            self.entries_at = at + len(table)
            fences_at = self.entries_at + self.count * fmt.ENTRY.size
            nfences = fmt.fence_count(self.count)
            self.fences = _Keys(_pread(self.fd, nfences * ID_SIZE, fences_at), ID_SIZE, nfences)
            try:
                text = _pread(self.fd, text_length, fences_at + nfences * ID_SIZE).decode()
            except UnicodeDecodeError:
                raise FormatError("index cache: its delta list is not text") from None
            self.deltas = frozenset(text.split())
        except BaseException:
            os.close(self.fd)
            raise

    def lookup(self, cid: bytes) -> fmt.Location | None:
        j = bisect.bisect_right(self.fences, cid) - 1
        if j < 0:
            return None
        first = j * fmt.FENCE
        n = min(fmt.FENCE, self.count - first)
        block = os.pread(self.fd, n * fmt.ENTRY.size, self.entries_at + first * fmt.ENTRY.size)
        keys = _Keys(block, fmt.ENTRY.size, len(block) // fmt.ENTRY.size)
        i = bisect.bisect_left(keys, cid)
        if i == len(keys) or keys[i] != cid:
            return None
        _, pack_no, offset, length, raw, flags = fmt.ENTRY.unpack_from(block, i * fmt.ENTRY.size)
        return fmt.Location(self.packs[pack_no], offset, length, raw, flags)

    def rows(self) -> Iterator[Row]:
        step = (_READ // fmt.ENTRY.size) * fmt.ENTRY.size
        end = self.entries_at + self.count * fmt.ENTRY.size
        for at in range(self.entries_at, end, step):
            block = _pread(self.fd, min(step, end - at), at)
            for cid, pack_no, offset, length, raw, flags in fmt.ENTRY.iter_unpack(block):
                yield ChunkId(cid), self.packs[pack_no], offset, length, raw, flags

    def close(self) -> None:
        os.close(self.fd)


class ChunkIndex:
    """Lookups over a cache view; ``refresh`` swaps in a newer view (safe while other threads
    look up: a view is never changed, and old ones are closed only by ``close``). Blobs read
    from the footers of packs no delta names (``adopt``) answer lookups too, from memory."""

    def __init__(
        self, view: _View | None, source: tuple[Store, Opener, Path] | None = None, tally: dict[PackId, int] | None = None
    ) -> None:  # fmt: skip
        self._view = view
        self._source = source
        self._tally = tally
        self._old: list[_View] = []
        self._lock = threading.Lock()
        self.adopted: dict[ChunkId, fmt.Location] = {}
        """Blobs of packs that no delta names, by their footers (``adopt``)."""
        self.warnings: list[str] = []
        """Unreadable deltas and damage records, and stray objects, that the index left out."""
        self.unreadable: set[str] = set()
        self.damage = Damage()
        self.exhausted = False
        """Every way to find a missing chunk was tried (Repository.locate); reset by a refresh
        that found something new."""

    def __len__(self) -> int:
        return self._view.count if self._view else 0

    def lookup(self, cid: bytes) -> fmt.Location | None:
        view = self._view
        found = view.lookup(cid) if view else None
        return found if found is not None or not self.adopted else self.adopted.get(ChunkId(cid))

    def adopt(self) -> int:
        """Read the footers of the packs in the store that no delta names (a run died before it
        indexed them, or a delta naming them is unreadable) and answer lookups from them too;
        the number of blobs adopted. Blobs a damage record names are left out."""
        if self._source is None:
            return 0
        store, opener, _ = self._source
        known = set(self.packs())
        loose = [o for o in store.list(names.PACKS) if PackId(bytes.fromhex(names.leaf(o.name))) not in known]

        def footer(o: ObjectInfo) -> list[tuple[ChunkId, fmt.Location]]:
            pack = PackId(bytes.fromhex(names.leaf(o.name)))
            try:
                entries = read_footer(store, opener, o.name, o.size)
            except (CorruptRepository, ObjectMissing, StoreError) as exc:
                self.warnings.append(
                    f"{o.name}: its footer is unreadable ({getattr(exc, 'message', exc)}); `liferaft repair` salvages it"
                )
                return []
            return [
                (e.chunk_id, fmt.Location(pack, e.offset, e.length, e.raw_length, e.flags))
                for e in entries
                if not self.damage.bad(e.chunk_id, pack)
            ]

        with ThreadPoolExecutor(max(1, min(8, len(loose)))) as pool:
            for found in pool.map(footer, loose):
                for cid, loc in found:
                    self.adopted.setdefault(cid, loc)
        return len(self.adopted)

    def rows(self) -> Iterator[Row]:
        view = self._view
        return view.rows() if view else iter(())

    def packs(self) -> list[PackId]:
        return list(self._view.packs) if self._view else []

    def deltas(self) -> frozenset[str]:
        """The deltas merged in (not those skipped as unreadable, nor the damage records)."""
        held = self._view.deltas if self._view else frozenset()
        return frozenset(d for d in held if not d.startswith((UNREADABLE_PREFIX, DAMAGE_PREFIX)))

    def refresh(self, rebuild: bool = False) -> bool:
        """List the store's deltas again and merge in what is new (rebuild: from scratch, the
        cache file not trusted); True when the index changed."""
        if self._source is None:
            return False
        with self._lock:
            store, opener, cache_dir = self._source
            build = _Build(store, opener, self._tally)
            new = _open_view(build, cache_dir, None if rebuild else self._view, rebuild)
            self.damage, self.unreadable = build.damage, build.unreadable
            self.adopted = {c: loc for c, loc in self.adopted.items() if not self.damage.bad(c, loc.pack)}
            self.warnings.extend(w for w in build.warnings if w not in self.warnings)
            if new is self._view:
                return False
            self.exhausted = False
            if self._view is not None:
                self._old.append(self._view)
            self._view = new
            return True

    def close(self) -> None:
        with self._lock:
            for view in [*self._old, *([self._view] if self._view else [])]:
                view.close()
            self._old, self._view = [], None


class _Delta:
    """One index delta, opened: its plaintext, read lazily."""

    def __init__(self, store: Store, opener: Opener, name: str) -> None:
        self.name = name
        try:
            self.body = opener.open(store.get(name), INDEX_AD)
            self.packs, self._entries = fmt.rows(self.body, INDEX_MAGIC)
        except (AuthenticationFailed, FormatError) as exc:
            raise CorruptRepository(f"index delta {name} is unreadable ({exc})") from None

    def rows(self) -> Iterator[Row]:
        try:
            for cid, pack_no, offset, length, raw, flags in self._entries:
                yield cid, self.packs[pack_no], offset, length, raw, flags
        except FormatError as exc:
            raise CorruptRepository(f"index delta {self.name} is unreadable ({exc})") from None


class DeltaPart:
    """Index entries gathered for a delta, packed as the delta holds them (56 bytes each, no
    object per entry): a writer's memory stays bounded by the part, not the repository."""

    def __init__(self) -> None:
        self.packs: dict[PackId, int] = {}
        self.entries = bytearray()
        self.count = 0

    def add(self, cid: ChunkId, loc: fmt.Location) -> None:
        number = self.packs.setdefault(loc.pack, len(self.packs))
        self.entries += fmt.ENTRY.pack(cid, number, loc.offset, loc.length, loc.raw_length, loc.flags)
        self.count += 1

    def ids(self) -> Iterator[bytes]:
        return (bytes(self.entries[at : at + ID_SIZE]) for at in range(0, len(self.entries), fmt.ENTRY.size))


def write_delta(store: Store, sealer: Sealer, delta_id: str, part: DeltaPart) -> str:
    """Seal and put part as the delta index/<delta_id>, then sync; its name."""
    name = names.index(delta_id)
    body = fmt.encode_packed(INDEX_MAGIC, list(part.packs), part.entries)
    store.put(name, sealer.seal(body, INDEX_AD))
    store.sync()
    return name


def _write_cache(path: Path, rows: Iterator[Row], deltas: frozenset[str]) -> None:
    """Write sorted rows (duplicates dropped) as a cache file holding deltas, streaming entries
    via a temporary file; it replaces the old cache whole."""
    packs: dict[PackId, int] = {}
    fences = bytearray()
    count = 0
    with tempfile.TemporaryFile(dir=path.parent) as body:
        previous = b""
        for cid, pack, offset, length, raw, flags in rows:
            if cid == previous:
                continue
            previous = cid
            if count % fmt.FENCE == 0:
                fences += cid
            body.write(fmt.ENTRY.pack(cid, packs.setdefault(pack, len(packs)), offset, length, raw, flags))
            count += 1
        body.seek(0)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as out:
                out.write(fmt.HEADER.pack(CACHE_MAGIC, len(packs), count))
                out.write(b"".join(packs))
                while block := body.read(_READ):
                    out.write(block)
                out.write(fences)
                out.write(fmt.cache_tail(deltas))
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):  # a full disk leaves no half cache behind
                tmp.unlink()
            raise


@dataclass
class _Build:
    """What one index build reads the store with, and what it found on the way."""

    store: Store
    opener: Opener
    tally: dict[PackId, int] | None = None
    damage: Damage = field(default_factory=Damage)
    warnings: list[str] = field(default_factory=list)
    """Deltas and damage records that could not be read, named for messages."""
    unreadable: set[str] = field(default_factory=set)


def open_index(
    store: Store, opener: Opener, cache_dir: Path, tally: dict[PackId, int] | None = None, adopt: bool = False
) -> ChunkIndex:  # fmt: skip
    """The index of every delta now in the store, via (and refreshing) the cache in cache_dir, or
    via a temporary cache when cache_dir cannot be written. Blobs that a damage record names are
    left out; a delta that cannot be read is skipped (with a warning in ``warnings``) and the
    packs no readable delta names are read from their footers instead (``adopt``), as they are
    too with adopt=True (a backup: the packs of a run that died before it indexed them are used,
    not uploaded again). tally: given (with a cache_dir of its own, so that every delta is
    read), it gets the bytes of every blob each pack holds by the deltas, also of copies the
    index does not keep (a chunk two sessions stored at once)."""
    index = ChunkIndex(None, (store, opener, cache_dir), tally)
    index.refresh()
    if adopt or index.unreadable:
        index.adopt()
    return index


def _open_view(build: _Build, cache_dir: Path, current: _View | None, rebuild: bool) -> _View | None:
    try:
        return _open_cached(build, cache_dir, current, rebuild)
    except OSError:
        pass
    try:
        tmp = Path(tempfile.mkdtemp(prefix="liferaft-index-"))
    except OSError as exc:
        raise CacheUnwritable(path=cache_dir, detail=exc.strerror or str(exc)) from None
    try:
        return _open_cached(build, tmp, current, True)  # open: it outlives the folder's removal
    except OSError as exc:
        raise CacheUnwritable(path=cache_dir, detail=exc.strerror or str(exc)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open_cached(build: _Build, cache_dir: Path, current: _View | None, rebuild: bool) -> _View | None:
    """A view of every delta in the store, from the best base at hand: the cache file (another
    process may have refreshed it) or the current view, whichever holds more of what is there.
    The damage records are part of what a view holds: when they changed, it is built anew."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / "index"
    present = frozenset(delta_names(build.store, build.warnings))
    build.damage = load_damage(build.store, build.opener, build.warnings)
    if not present:
        return None
    disk: _View | None = None
    if not rebuild:
        with suppress(FileNotFoundError, FormatError):  # a damaged cache is rebuilt, never trusted
            disk = _View(path)

    def covered(v: _View) -> frozenset[str]:
        """The deltas v accounts for: merged, or skipped as unreadable."""
        return frozenset(d.removeprefix(UNREADABLE_PREFIX) for d in v.deltas if not d.startswith(DAMAGE_PREFIX))

    def fits(v: _View) -> bool:
        return covered(v) <= present and {d for d in v.deltas if d.startswith(DAMAGE_PREFIX)} == build.damage.names

    usable = [v for v in (current, disk) if v is not None and fits(v)]
    base = max(usable, key=lambda v: len(v.deltas), default=None)
    if disk is not None and disk is not base:
        disk.close()
    if base is not None:
        build.unreadable = {d.removeprefix(UNREADABLE_PREFIX) for d in base.deltas if d.startswith(UNREADABLE_PREFIX)}
        if covered(base) == present:
            return base
    try:
        todo = sorted(present - (covered(base) if base else frozenset()))
        return _merge(build, path, base, todo, build.damage.names if base is None else frozenset())
    finally:
        if base is not None and base is not current:
            base.close()


UNREADABLE_PREFIX = "unreadable:"
"""A cache's delta list names a delta it skipped as unreadable so (not retried at every open)."""
DAMAGE_PREFIX = f"{names.DAMAGED}/"


def _merge(build: _Build, path: Path, base: _View | None, added: list[str], damage_names: frozenset[str]) -> _View | None:
    """base merged with the added deltas, a batch of at most BATCH_BYTES of them at a time,
    without the blobs the damage records name; tally: gets the blob bytes per pack of the added
    deltas' rows (before duplicates drop)."""
    tally, damage = build.tally, build.damage

    def kept(rows: Iterator[Row]) -> Iterator[Row]:
        for row in rows:
            if tally is not None:
                tally[row[1]] = tally.get(row[1], 0) + row[3]
            if not damage.bad(row[0], row[1]):
                yield row

    view = base
    extra = set(damage_names)
    while added or extra:
        batch: list[_Delta] = []
        while added and (not batch or sum(len(d.body) for d in batch) < BATCH_BYTES):
            name = added.pop(0)
            try:
                batch.append(_Delta(build.store, build.opener, name))
            except CorruptRepository as exc:
                build.warnings.append(f"{exc.message}: skipped; the packs it named are read from their footers")
                build.unreadable.add(name)
                extra.add(UNREADABLE_PREFIX + name)
            except ObjectMissing:
                continue  # removed (compaction) since the listing
        held = (view.deltas if view else frozenset()) | {d.name for d in batch} | extra
        extra = set()
        _write_cache(path, heapq.merge(*([view.rows()] if view else []), *(kept(d.rows()) for d in batch)), held)
        del batch
        if view is not None and view is not base:
            view.close()
        view = _View(path)
    return view


def delta_names(store: Store, warnings: list[str] | None = None) -> list[str]:
    """The index deltas in the store; an object there that is no delta (a sync tool's copy, a
    stray file) is left out, with a warning."""
    return valid_names(store, names.INDEX, DELTA_NAME, "index delta", warnings)


DELTA_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
"""What the store itself accepts as a name: anything else there was put by something else."""
