"""Packs: sealed blobs gathered into ~pack-size objects and uploaded by one background thread.

Blobs are encrypted straight into a page-aligned pack buffer (a slot is reserved under a lock,
then filled without it), so a chunk's ciphertext is never copied. Buffers come from a pool of
three, reused from pack to pack: one filling, one waiting, one uploading. Adders block while none
is free, which bounds memory. Before upload the footer is opened again and its entries checked
against the pack; after upload the stored object is read back in ranges and must equal what was
written (unless the store verifies a put's content itself, ``capabilities.verified_put``). Only
then do its blobs count: their locations go to ``stored`` (on the uploading thread), and are not
kept here.
"""

from __future__ import annotations

import mmap
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import blake3

from liferaft.crypto.aead import AuthenticationFailed, Opener, Sealer
from liferaft.errors import CorruptRepository, LiferaftError
from liferaft.format import PACK_MAGIC, PACK_TRAILER_MAGIC, ChunkId, FormatError, PackId, envelope
from liferaft.format import pack as fmt
from liferaft.format.index import Location
from liferaft.repo import names
from liferaft.store.base import Store

FOOTER_AD = b"liferaft pack footer"
READBACK_RANGE = 2 * 1024 * 1024
"""Small enough that its buffers come from the heap, not fresh (page-faulting) mmaps."""
MAX_ENTRIES = 16384
"""Blobs per pack at most, so that the footer always fits the buffer's reserve."""
FOOTER_RESERVE = fmt.COUNT.size + MAX_ENTRIES * fmt.FOOTER_ENTRY.size + envelope.OVERHEAD + fmt.TRAILER.size
POOL = 3
_PAGE = mmap.PAGESIZE


def pack_id_of(data: bytes | bytearray | memoryview) -> PackId:
    """A pack's name: BLAKE3-256 of all its stored bytes (multi-threaded for whole packs)."""
    return PackId(blake3.blake3(data, max_threads=blake3.blake3.AUTO).digest())


def check_footer(opener: Opener, data: bytes | bytearray | memoryview) -> list[fmt.PackEntry]:
    """The entries of a whole pack's footer, checked to tile its blob area."""
    view, sealed = fmt.split(data)
    entries = fmt.decode_footer(opener.open(sealed, FOOTER_AD))
    fmt.check_entries(entries, len(view) - fmt.TRAILER.size - len(sealed))
    return entries


def read_footer(store: Store, opener: Opener, name: str, size: int) -> list[fmt.PackEntry]:
    """A stored pack's footer entries, read with two range requests (its trailer, then the
    footer), checked to tile the blob area; CorruptRepository where they do not."""
    try:
        if size < fmt.HEADER_SIZE + fmt.TRAILER.size:
            raise FormatError("pack: too short")
        length, magic = fmt.TRAILER.unpack(store.get_range(name, size - fmt.TRAILER.size, fmt.TRAILER.size))
        if magic != PACK_TRAILER_MAGIC or fmt.HEADER_SIZE + length > size - fmt.TRAILER.size:
            raise FormatError("pack: bad trailer")
        end = size - fmt.TRAILER.size
        entries = fmt.decode_footer(opener.open(store.get_range(name, end - length, length), FOOTER_AD))
        fmt.check_entries(entries, end - length)
    except (AuthenticationFailed, FormatError) as exc:
        raise CorruptRepository(f"{name}: its footer is unreadable ({exc})") from None
    return entries


@dataclass(eq=False)
class _Pack:
    buf: mmap.mmap
    used: int = len(PACK_MAGIC)
    pending: int = 0
    """Slots reserved but not yet filled."""
    full: bool = False
    entries: list[fmt.PackEntry] = field(default_factory=list)


class Packer:
    def __init__(
        self, store: Store, sealer: Sealer, opener: Opener, pack_size: int, max_blob: int,
        stored: Callable[[list[tuple[ChunkId, Location]]], None],
    ) -> None:  # fmt: skip
        self._store, self._sealer, self._opener = store, sealer, opener
        self._stored = stored
        self._pack_size = pack_size
        capacity = -(-(pack_size + max_blob + envelope.OVERHEAD + FOOTER_RESERVE) // _PAGE) * _PAGE
        self._free: queue.Queue[mmap.mmap] = queue.Queue()
        for _ in range(POOL):
            self._free.put(mmap.mmap(-1, capacity))
        self._lock = threading.Lock()
        self._current: _Pack | None = None
        self._ready: queue.Queue[_Pack | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._upload_loop, name="liferaft-packer", daemon=True)
        self._thread.start()

    def add(self, cid: ChunkId, plaintext: bytes | bytearray, raw_length: int, flags: int) -> int:
        """Seal plaintext (the chunk, compressed or not) into the current pack; its stored size."""
        size = envelope.OVERHEAD + len(plaintext)
        return self._add(cid, size, raw_length, flags, lambda view: self._sealer.seal_into(plaintext, cid, view))

    def add_sealed(self, cid: ChunkId, blob: bytes | memoryview, raw_length: int, flags: int) -> int:
        """A blob sealed already (taken from another pack, as it is: GC's repack) into the
        current pack; its size."""

        def fill(view: memoryview) -> None:
            view[:] = blob

        return self._add(cid, len(blob), raw_length, flags, fill)

    def _add(self, cid: ChunkId, size: int, raw_length: int, flags: int, fill: Callable[[memoryview], None]) -> int:
        """Reserve size bytes of the current pack for a blob (under the lock), then fill them
        (without it)."""
        self._raise_pending()
        with self._lock:
            if self._current is None:
                self._current = _Pack(self._take_buffer())
                self._current.buf[: len(PACK_MAGIC)] = PACK_MAGIC
            pack = self._current
            offset = pack.used
            pack.used += size
            pack.pending += 1
            pack.entries.append(fmt.PackEntry(cid, offset, size, raw_length, flags))
            if pack.used >= self._pack_size or len(pack.entries) >= MAX_ENTRIES:
                pack.full, self._current = True, None
        try:
            with memoryview(pack.buf) as view:
                fill(view[offset : offset + size])
        finally:
            with self._lock:
                pack.pending -= 1
                ready = pack.full and pack.pending == 0
            if ready:
                self._ready.put(pack)
        return size

    def _take_buffer(self) -> mmap.mmap:
        while True:
            self._raise_pending()
            try:
                return self._free.get(timeout=0.5)
            except queue.Empty:
                continue

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """Upload what is left and wait for the uploader. Call when no add() is running any more."""
        with self._lock:
            last, self._current = self._current, None
        if last is not None:
            self._ready.put(last)
        self._ready.put(None)
        self._thread.join()
        self._raise_pending()

    def abort(self) -> None:
        """Stop the uploader without uploading pending packs (they are simply never referenced)."""
        if self._error is None:
            self._error = LiferaftError("aborted")
        self._ready.put(None)
        self._thread.join()

    def settle(self) -> None:
        """Wait until every full pack handed over so far is uploaded (nothing is being written
        afterwards until the next add() fills a pack)."""
        self._ready.join()
        self._raise_pending()

    def _upload_loop(self) -> None:
        while True:
            pack = self._ready.get()
            if pack is None:
                self._ready.task_done()
                return
            if self._error is None:
                try:
                    self._upload(pack)
                except BaseException as exc:  # handed to the adding threads
                    self._error = exc
            self._free.put(pack.buf)
            del pack
            self._ready.task_done()

    def _upload(self, pack: _Pack) -> None:
        buf, at = pack.buf, pack.used
        footer = self._sealer.seal(fmt.encode_footer(pack.entries), FOOTER_AD)
        tail = footer + fmt.trailer(len(footer))
        buf[at : at + len(tail)] = tail
        size = at + len(tail)
        with memoryview(buf) as whole, whole[:size] as view:
            check_footer(self._opener, view)
            pack_id = pack_id_of(view)
            name = names.pack(pack_id)
            self._store.put(name, view)
        if not self._store.capabilities.verified_put:  # read back and compare with what was meant
            for offset in range(0, size, READBACK_RANGE):
                n = min(READBACK_RANGE, size - offset)
                if buf[offset : offset + n] != self._store.get_range(name, offset, n):
                    raise CorruptRepository(f"pack {pack_id.hex()} did not read back as written")
        if self._store.stat(name).size != size:
            raise CorruptRepository(f"pack {pack_id.hex()} has the wrong size after upload")
        self._stored([(e.chunk_id, Location(pack_id, e.offset, e.length, e.raw_length, e.flags)) for e in pack.entries])
