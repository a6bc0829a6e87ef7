"""Verify: is everything the snapshots reference present and intact, and what does any damage
cost?

Structure (default): every snapshot opens, its chunk map reads, every chunk it names is in the
index (or, with a delta lost or unreadable, in a pack's footer), and every pack the index names
exists with room for its blobs. ``read_data``: every pack is read whole and every blob must open
and hash back to its chunk id; a pack whose bytes do not match its name, or whose footer does not
open, while every blob is intact, loses nothing and is named as such. ``subset`` (k, n) reads only
the k-th of n shares of the packs, by pack id: n runs with k = 1..n read every pack once, and a
pack written since falls into a share as well, so a rotating share reads everything within n runs. The index is rebuilt from
the store's deltas for this, never taken from the local cache.

Damage found is recorded in the repository (``repo.damage``): the index then leaves those blobs
out, so the next backup of a source that holds the same data stores it again, which heals every
snapshot that shares it. For every snapshot that still lacks data, the result names the byte
ranges of its image and the partitions they fall in. Status: ``clean`` (no damage), ``healed``
(damage recorded or found, but every snapshot has all its data), ``damaged`` (something is lost).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import zstandard

from liferaft.crypto.aead import AuthenticationFailed
from liferaft.errors import CorruptRepository, LiferaftError, ObjectMissing
from liferaft.format import UNSTORED, ChunkId, FormatError, PackId, SnapshotId
from liferaft.format.damage import DamageRecord
from liferaft.format.index import Location
from liferaft.format.snapshot import Snapshot
from liferaft.ops.cancel import Cancel, check
from liferaft.ops.mount import PartitionFiles, files_in
from liferaft.ops.pipeline import ordered_map
from liferaft.ops.progress import NoProgress, Progress
from liferaft.ops.snapshots import select
from liferaft.repo import blobs, names
from liferaft.repo.image import SnapshotImage
from liferaft.repo.index import ChunkIndex
from liferaft.repo.packer import check_footer, pack_id_of
from liferaft.repo.repository import Repository

CLEAN, HEALED, DAMAGED = "clean", "healed", "damaged"


@dataclass(slots=True)
class Loss:
    """What one snapshot lacks."""

    snapshot_id: str
    hostname: str
    source: str
    chunks: int
    bytes: int
    ranges: list[tuple[int, int]]
    """Byte ranges [start, end) of the image that cannot be restored."""
    partitions: list[str]
    """The partitions those ranges fall in ('partition 2 (ext4)'), or the gaps between them."""
    files: list[PartitionFiles] = field(default_factory=list)
    """With ``verify(files=True)``: per partition, the files the ranges fall in."""


@dataclass(slots=True)
class VerifyResult:
    snapshots: int = 0
    chunks: int = 0
    packs: int = 0
    bytes_read: int = 0
    subset: str = ""
    """The share of the packs that was read ('3/7'), when not all of them were."""
    unreferenced_packs: int = 0
    errors: list[str] = field(default_factory=list)
    """Structural problems: a snapshot that does not open."""
    found: list[str] = field(default_factory=list)
    """Each damaged or missing object this run found (healed or not: ``lost`` says what it costs)."""
    seconds: float = 0.0
    damaged: int = 0
    """Chunks with a damaged or missing copy, recorded before or found now."""
    healed: int = 0
    """Of those, the ones a good copy exists of (stored again by a later backup)."""
    lost: list[Loss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Findings that lose nothing (a footer or header flip, blobs read from footers), warnings."""
    recorded: str = ""
    """The damage record this run wrote, if it found new damage."""
    unreadable: list[str] = field(default_factory=list)
    """Index deltas that could not be read (their packs were read from their footers)."""
    warnings: list[str] = field(default_factory=list)
    """What the repository left out (stray objects, unreadable deltas)."""

    @property
    def status(self) -> str:
        if self.lost or self.errors:
            return DAMAGED
        return HEALED if self.damaged or self.unreadable else CLEAN

    @property
    def ok(self) -> bool:
        return self.status != DAMAGED

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok, "status": self.status}


def verify(
    repo: Repository, name: str | None = None, read_data: bool = False, progress: Progress | None = None,
    cancel: Cancel | None = None, files: bool = False, subset: tuple[int, int] | None = None,
) -> VerifyResult:  # fmt: skip
    """name: only that snapshot (and with read_data only its packs). cancel: another thread may
    stop the check (Interrupted). files: name the files that lost bytes fall in, where the
    filesystem can say (each snapshot that lacks data is mounted for it). subset (k, n): with
    read_data, read only the k-th of n shares of the packs."""
    progress = progress or NoProgress()
    started = time.monotonic()
    result = VerifyResult()
    with tempfile.TemporaryDirectory(prefix="liferaft-verify-") as tmp:
        index = repo.open_index(Path(tmp))
        try:
            sids = [select(repo, name)] if name else repo.snapshot_ids()
            needed: dict[PackId, int] = {}
            missing: set[ChunkId] = set()
            for sid in sids:
                check(cancel)
                _check_snapshot(repo, index, sid, needed, missing, result)
            if index.adopted:
                result.notes.append(
                    f"{len(index.adopted)} blobs were found in packs no index delta names (a delta lost or unreadable, "
                    "or a backup still running): nothing is lost; `liferaft repair` writes their index again"
                )
            bad_packs, bad_blobs, why = _check_pack_sizes(repo, index, needed)
            stored = {names.leaf(o.name) for o in repo.store.list(names.PACKS)}
            indexed = {p.hex() for p in index.packs()} | {loc.pack.hex() for loc in index.adopted.values()}
            result.unreferenced_packs = len(stored - indexed)
            if read_data:
                wanted = {p.hex() for p in needed} if name else indexed
                if subset:
                    wanted = {p for p in wanted if in_share(p, *subset)}
                    result.subset = f"{subset[0]}/{subset[1]}"
                found = _read_packs(
                    repo, index, sorted((wanted & stored) - {p.hex() for p in bad_packs}), result, progress, cancel
                )
                bad_blobs |= found[0]
                why += found[1]
            result.found.extend(why)
            new_packs = bad_packs - index.damage.packs
            new_blobs = {b for b in bad_blobs if not index.damage.bad(*b)}
            if new_packs or new_blobs:  # what no record names yet
                record = DamageRecord(tuple(sorted(new_packs)), tuple(sorted(new_blobs)), tuple(why))
                result.recorded = _record(repo, record)
                index.refresh(rebuild=True)  # without the damaged blobs: another copy may serve
            _account(repo, index, sids, missing, result, cancel, files)
            result.unreadable = sorted(index.unreadable)
        finally:
            index.close()
    result.warnings = list(repo.warnings)
    result.seconds = time.monotonic() - started
    return result


def in_share(pack_hex: str, k: int, n: int) -> bool:
    """Whether a pack is in the k-th of n shares (1 <= k <= n): pack ids are hashes, so the
    shares are about equal."""
    return int(pack_hex[:8], 16) % n == k - 1


def parse_subset(text: str) -> tuple[int, int]:
    """'K/N' (1 <= K <= N) as (K, N); ValueError otherwise."""
    k, sep, n = text.partition("/")
    if not (sep and k.strip().isdigit() and n.strip().isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f"{text!r} is not K/N with 1 <= K <= N (e.g. 1/7: the first of seven shares of the packs)")
    return int(k), int(n)


def _record(repo: Repository, record: DamageRecord) -> str:
    from liferaft.crypto.aead import Sealer
    from liferaft.repo import damage

    return damage.record(repo.store, Sealer(repo.master), record) or ""


def _check_snapshot(
    repo: Repository, index: ChunkIndex, sid: SnapshotId, needed: dict[PackId, int], missing: set[ChunkId],
    result: VerifyResult,
) -> None:  # fmt: skip
    try:
        snap = repo.load_snapshot(sid)
        with SnapshotImage(repo, snap, index) as image:
            for cid in itertools.chain(snap.map_pieces, image.entries()):  # streamed: bounded memory
                if cid in UNSTORED:
                    continue
                try:
                    loc = repo.locate(index, cid)
                except CorruptRepository:
                    missing.add(cid)
                    continue
                result.chunks += 1
                needed[loc.pack] = max(needed.get(loc.pack, 0), loc.offset + loc.length)
        result.snapshots += 1
    except LiferaftError as exc:
        result.errors.append(f"snapshot {sid[:12]}: {exc.message}")


def _rows_of(index: ChunkIndex, packs: set[PackId]) -> Iterator[tuple[ChunkId, Location]]:
    """Every blob the index (or an adopted footer) places in packs: one pass over the index."""
    for cid, pack, offset, length, raw, flags in index.rows():
        if pack in packs:
            yield cid, Location(pack, offset, length, raw, flags)
    for cid, loc in index.adopted.items():
        if loc.pack in packs:
            yield cid, loc


def _check_pack_sizes(
    repo: Repository, index: ChunkIndex, needed: dict[PackId, int]
) -> tuple[set[PackId], set[tuple[ChunkId, PackId]], list[str]]:  # fmt: skip
    """Packs missing (whole), and the blobs truncated packs lost, with what was found."""
    gone: set[PackId] = set()
    short: dict[PackId, int] = {}
    why = []
    for pack, end in sorted(needed.items()):
        try:
            size = repo.store.stat(names.pack(pack)).size
        except ObjectMissing:
            gone.add(pack)
            why.append(f"pack {pack.hex()[:16]} is missing")
            continue
        if size < end:
            short[pack] = size
            why.append(f"pack {pack.hex()[:16]} is truncated ({size} bytes, blobs reach {end})")
    blobs_lost = {
        (cid, loc.pack)
        for cid, loc in _rows_of(index, gone | set(short))
        if loc.pack in gone or loc.offset + loc.length > short[loc.pack]
    }
    return gone, blobs_lost, why


def _read_packs(
    repo: Repository, index: ChunkIndex, packs: list[str], result: VerifyResult, progress: Progress, cancel: Cancel | None
) -> tuple[set[tuple[ChunkId, PackId]], list[str]]:  # fmt: skip
    total = sum(repo.store.stat(names.pack(bytes.fromhex(p))).size for p in packs)
    bad: set[tuple[ChunkId, PackId]] = set()
    why: list[str] = []
    progress.start("verify data", total)
    try:
        for n, found, problems, notes in ordered_map(lambda p: _check_pack(repo, index, p), packs, workers=2, cancel=cancel):
            result.packs += 1
            result.bytes_read += n
            bad |= found
            why += problems
            result.notes += notes
            progress.advance(n)
    finally:
        progress.finish()
    return bad, why


def _check_pack(
    repo: Repository, index: ChunkIndex, pack_hex: str
) -> tuple[int, set[tuple[ChunkId, PackId]], list[str], list[str]]:  # fmt: skip
    """(bytes read, damaged blobs, what is wrong, what is wrong but harmless) of one pack: every
    blob its footer lists (or, with the footer unreadable, every blob the index places in it)."""
    what = f"pack {pack_hex[:16]}"
    pack = PackId(bytes.fromhex(pack_hex))
    try:
        data = repo.store.get(names.pack(pack))
    except ObjectMissing:
        lost = {(cid, pack) for cid, _ in _rows_of(index, {pack})}
        return 0, lost, [f"{what} is missing"], []
    named = pack_id_of(data).hex() == pack_hex
    harmless: list[str] = []
    try:
        entries = [
            (e.chunk_id, Location(pack, e.offset, e.length, e.raw_length, e.flags)) for e in check_footer(repo.opener, data)
        ]
    except (AuthenticationFailed, FormatError) as exc:
        entries = list(_rows_of(index, {pack}))
        harmless.append(f"{what}: its footer is unreadable ({exc}); its blobs were checked by the index instead")
    bad: set[tuple[ChunkId, PackId]] = set()
    problems = []
    for cid, loc in entries:
        try:
            plain = blobs.open_chunk(repo.opener, cid, data[loc.offset : loc.offset + loc.length], loc.flags, loc.raw_length)
            intact = len(plain) == loc.raw_length and repo.ids.chunk_id(plain) == cid
        except (AuthenticationFailed, zstandard.ZstdError, FormatError):
            intact = False
        if not intact:
            bad.add((cid, pack))
            problems.append(f"{what}: blob {cid.hex()[:16]} is damaged")
    if not named and not bad:
        harmless.append(f"{what}: its bytes do not match its name, but every blob in it is intact: no data lost")
    elif not named:
        problems.append(f"{what}: its content does not match its name")
    if harmless and not bad:
        harmless[-1] += "; `liferaft repair` writes it anew"
    return len(data), bad, problems, harmless


def _account(
    repo: Repository, index: ChunkIndex, sids: list[SnapshotId], missing: set[ChunkId], result: VerifyResult,
    cancel: Cancel | None, files: bool,
) -> None:  # fmt: skip
    """Which chunks have a damaged or missing copy, which of them a good copy is left of, and
    for each snapshot, what it lacks (and with files, in which files)."""
    damaged = {ChunkId(c) for c in index.damage.cids} | missing
    lost = {c for c in damaged if index.lookup(c) is None}
    result.damaged, result.healed = len(damaged), len(damaged - lost)
    if not lost:
        return
    for sid in sids:
        check(cancel)
        try:
            snap = repo.load_snapshot(sid)
        except LiferaftError:
            continue  # named in errors already
        loss = snapshot_loss(repo, index, sid, snap, lost)
        if loss is not None:
            if files:
                loss.files = files_in(repo, snap, loss.ranges, index)
            result.lost.append(loss)


def snapshot_loss(
    repo: Repository, index: ChunkIndex, sid: SnapshotId, snap: Snapshot, lost: set[ChunkId] | None
) -> Loss | None:  # fmt: skip
    """What the snapshot lacks: its chunks in lost (None: those the index does not hold)."""

    def gone(cid: ChunkId) -> bool:
        return cid in lost if lost is not None else cid not in UNSTORED and index.lookup(cid) is None

    ranges: list[tuple[int, int]] = []
    count = 0
    if any(gone(p) for p in snap.map_pieces):
        ranges, count = [(0, snap.size)], snap.chunk_count  # its chunk map: nothing of it can be read
    else:
        with SnapshotImage(repo, snap, index) as image:
            for i, cid in enumerate(image.entries()):
                if gone(cid):
                    count += 1
                    lo, hi = i * snap.chunk_size, min((i + 1) * snap.chunk_size, snap.size)
                    if ranges and ranges[-1][1] == lo:
                        ranges[-1] = (ranges[-1][0], hi)
                    else:
                        ranges.append((lo, hi))
    if not ranges:
        return None
    return Loss(sid, snap.hostname, snap.source, count, sum(b - a for a, b in ranges), ranges, _partitions(snap, ranges))


def _partitions(snap: Snapshot, ranges: list[tuple[int, int]]) -> list[str]:
    hit = []
    for r in snap.disk.regions:
        if any(a < r.start + r.size and r.start < b for a, b in ranges):
            hit.append(r.title)
    covered = sum(max(0, min(b, r.start + r.size) - max(a, r.start)) for r in snap.disk.regions for a, b in ranges)
    if covered < sum(b - a for a, b in ranges):
        hit.append("the partition table or gaps between partitions")
    return hit
