"""Packs: sealed blobs gathered into ~pack-size objects and uploaded by one background thread.

Memory stays bounded: one pack filling, at most one waiting, one uploading (adders block while
the queue is full). Before upload the footer is opened again and its entries checked against the
pack; after upload the stored object is read back in ranges and must equal what was written.
Only then do its blobs count (``locations``).
"""

from __future__ import annotations

import queue
import threading

import blake3

from liferaft.crypto.aead import Opener, Sealer
from liferaft.errors import CorruptRepository, LiferaftError
from liferaft.format import PACK_MAGIC, ChunkId, PackId
from liferaft.format import pack as fmt
from liferaft.format.index import Location
from liferaft.repo import names
from liferaft.store.base import Store

FOOTER_AD = b"liferaft pack footer"
READBACK_RANGE = 8 * 1024 * 1024


def check_footer(opener: Opener, data: bytes | bytearray) -> list[fmt.PackEntry]:
    """The entries of a whole pack's footer, checked to tile its blob area."""
    view, sealed = fmt.split(data)
    entries = fmt.decode_footer(opener.open(sealed, FOOTER_AD))
    fmt.check_entries(entries, len(view) - fmt.TRAILER.size - len(sealed))
    return entries


class Packer:
    def __init__(self, store: Store, sealer: Sealer, opener: Opener, pack_size: int) -> None:
        self._store, self._sealer, self._opener = store, sealer, opener
        self._pack_size = pack_size
        self._lock = threading.Lock()
        self._buf = bytearray(PACK_MAGIC)
        self._entries: list[fmt.PackEntry] = []
        self._queue: queue.Queue[tuple[bytearray, list[fmt.PackEntry]] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self.locations: list[tuple[ChunkId, Location]] = []
        self.packs_written = 0
        self.bytes_written = 0
        self._thread = threading.Thread(target=self._upload_loop, name="liferaft-packer", daemon=True)
        self._thread.start()

    def add(self, cid: ChunkId, blob: bytes, raw_length: int, flags: int) -> None:
        self._raise_pending()
        full = None
        with self._lock:
            self._entries.append(fmt.PackEntry(cid, len(self._buf), len(blob), raw_length, flags))
            self._buf += blob
            if len(self._buf) >= self._pack_size:
                full = (self._buf, self._entries)
                self._buf, self._entries = bytearray(PACK_MAGIC), []
        if full is not None:
            self._put(full)

    def _put(self, item: tuple[bytearray, list[fmt.PackEntry]] | None) -> None:
        while True:
            self._raise_pending()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def finish(self) -> list[tuple[ChunkId, Location]]:
        """Upload what is left, wait for the uploader, and return every stored blob's location."""
        with self._lock:
            last = (self._buf, self._entries) if self._entries else None
            self._buf, self._entries = bytearray(PACK_MAGIC), []
        if last is not None:
            self._put(last)
        self._put(None)
        self._thread.join()
        self._raise_pending()
        return self.locations

    def abort(self) -> None:
        """Stop the uploader without waiting for pending packs (they are simply never referenced)."""
        if self._error is None:
            self._error = LiferaftError("aborted")
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._queue.put(None)
        self._thread.join()

    def _upload_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            buf, entries = item
            del item  # the pack's buffer must not outlive its upload
            if self._error is None:
                try:
                    self._upload(buf, entries)
                except BaseException as exc:  # handed to the adding threads
                    self._error = exc
            del buf, entries

    def _upload(self, buf: bytearray, entries: list[fmt.PackEntry]) -> None:
        footer = self._sealer.seal(fmt.encode_footer(entries), FOOTER_AD)
        buf += footer
        buf += fmt.trailer(len(footer))
        check_footer(self._opener, buf)
        pack_id = PackId(blake3.blake3(buf, max_threads=blake3.blake3.AUTO).digest())
        name = names.pack(pack_id)
        self._store.put(name, buf)
        size = len(buf)
        try:  # read back in ranges and compare with what was meant to be stored
            for offset in range(0, size, READBACK_RANGE):
                n = min(READBACK_RANGE, size - offset)
                # bytearray == bytes is a memcmp (a memoryview comparison would go item by item)
                if buf[offset : offset + n] != self._store.get_range(name, offset, n):
                    raise CorruptRepository(f"pack {pack_id.hex()} did not read back as written")
            if self._store.size(name) != size:
                raise CorruptRepository(f"pack {pack_id.hex()} has the wrong size after upload")
        finally:
            buf.clear()
        for e in entries:
            self.locations.append((e.chunk_id, Location(pack_id, e.offset, e.length, e.raw_length, e.flags)))
        self.packs_written += 1
        self.bytes_written += size
