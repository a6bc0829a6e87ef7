"""Verify: is everything the snapshots reference present and intact?

Structure (default): every snapshot opens, its chunk map reads, every chunk it names is in the
index, and every pack the index names exists with room for its blobs. ``read_data``: every pack is
read whole, its BLAKE3 must equal its name, its footer must open and tile it, and every blob must
open and hash back to its chunk id. The index is rebuilt from the store's deltas for this, never
taken from the local cache.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import zstandard

from liferaft.crypto.aead import AuthenticationFailed
from liferaft.errors import LiferaftError
from liferaft.format import UNSTORED, FormatError, PackId, SnapshotId
from liferaft.ops.cancel import Cancel, check
from liferaft.ops.pipeline import ordered_map
from liferaft.ops.progress import NoProgress, Progress
from liferaft.ops.snapshots import select
from liferaft.repo import blobs, names
from liferaft.repo.image import SnapshotImage
from liferaft.repo.index import ChunkIndex
from liferaft.repo.packer import check_footer, pack_id_of
from liferaft.repo.repository import Repository


@dataclass(slots=True)
class VerifyResult:
    snapshots: int = 0
    chunks: int = 0
    packs: int = 0
    bytes_read: int = 0
    unreferenced_packs: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def verify(
    repo: Repository, name: str | None = None, read_data: bool = False, progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> VerifyResult:  # fmt: skip
    """cancel: another thread may stop the check (Interrupted)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    result = VerifyResult()
    with tempfile.TemporaryDirectory(prefix="liferaft-verify-") as tmp:
        index = repo.open_index(Path(tmp))
        try:
            sids = [select(repo, name)] if name else repo.snapshot_ids()
            needed: dict[PackId, int] = {}
            relisted = False

            def relist() -> bool:
                """List the deltas again, once a run: a damaged repository misses many chunks."""
                nonlocal relisted
                relisted, first = True, not relisted
                return first and index.refresh()

            for sid in sids:
                check(cancel)
                _check_snapshot(repo, index, sid, needed, result, relist)
            _check_pack_sizes(repo, needed, result)
            stored = {names.leaf(o.name) for o in repo.store.list(names.PACKS)}
            indexed = {p.hex() for p in index.packs()}
            result.unreferenced_packs = len(stored - indexed)
            if read_data:
                _read_packs(repo, sorted(indexed & stored), result, progress, cancel)
        finally:
            index.close()
    result.seconds = time.monotonic() - started
    return result


def _check_snapshot(
    repo: Repository, index: ChunkIndex, sid: SnapshotId, needed: dict[PackId, int], result: VerifyResult,
    relist: Callable[[], bool],
) -> None:  # fmt: skip
    try:
        snap = repo.load_snapshot(sid)
        with SnapshotImage(repo, snap, index) as image:
            for cid in itertools.chain(snap.map_pieces, image.entries()):  # streamed: bounded memory
                if cid in UNSTORED:
                    continue
                loc = index.lookup(cid)
                if loc is None and relist():  # the first listing may have lagged
                    loc = index.lookup(cid)
                if loc is None:
                    result.errors.append(f"snapshot {sid[:12]}: chunk {cid.hex()[:16]} is not in the index")
                    continue
                result.chunks += 1
                needed[loc.pack] = max(needed.get(loc.pack, 0), loc.offset + loc.length)
        result.snapshots += 1
    except LiferaftError as exc:
        result.errors.append(f"snapshot {sid[:12]}: {exc.message}")


def _check_pack_sizes(repo: Repository, needed: dict[PackId, int], result: VerifyResult) -> None:
    for pack, end in sorted(needed.items()):
        try:
            size = repo.store.stat(names.pack(pack)).size
        except LiferaftError:
            result.errors.append(f"pack {pack.hex()[:16]} is missing")
            continue
        if size < end:
            result.errors.append(f"pack {pack.hex()[:16]} is truncated ({size} bytes, blobs reach {end})")


def _read_packs(repo: Repository, packs: list[str], result: VerifyResult, progress: Progress, cancel: Cancel | None) -> None:
    total = sum(repo.store.stat(names.pack(bytes.fromhex(p))).size for p in packs)
    progress.start("verify data", total)
    try:
        for n, errors in ordered_map(lambda p: _check_pack(repo, p), packs, workers=2, cancel=cancel):
            result.packs += 1
            result.bytes_read += n
            result.errors.extend(errors)
            progress.advance(n)
    finally:
        progress.finish()


def _check_pack(repo: Repository, pack_hex: str) -> tuple[int, list[str]]:
    """(bytes read, errors) of one pack: name, footer, and every blob the footer lists."""
    what = f"pack {pack_hex[:16]}"
    try:
        data = repo.store.get(names.pack(bytes.fromhex(pack_hex)))
    except LiferaftError as exc:
        return 0, [f"{what}: {exc.message}"]
    if pack_id_of(data).hex() != pack_hex:
        return len(data), [f"{what}: content does not match its name"]
    try:
        entries = check_footer(repo.opener, data)
    except (AuthenticationFailed, FormatError) as exc:
        return len(data), [f"{what}: footer unreadable ({exc})"]
    errors = []
    for e in entries:
        try:
            plain = blobs.open_chunk(repo.opener, e.chunk_id, data[e.offset : e.offset + e.length], e.flags, e.raw_length)
        except (AuthenticationFailed, zstandard.ZstdError, FormatError) as exc:
            errors.append(f"{what}: blob {e.chunk_id.hex()[:16]} is damaged ({exc or type(exc).__name__})")
            continue
        if len(plain) != e.raw_length or repo.ids.chunk_id(plain) != e.chunk_id:
            errors.append(f"{what}: blob {e.chunk_id.hex()[:16]} does not hash to its id")
    return len(data), errors
