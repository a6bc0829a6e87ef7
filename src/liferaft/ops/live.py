"""The passes of a live backup (the freeze_trace provider; docs/design.md, "Live images").

Pass 1 copies every used chunk (or, with change tracking, every chunk written since the last
backup) while the filesystems keep running; the trace records what is written meanwhile. Later
passes re-copy those chunks whole while that set shrinks; a chunk written again right after its
re-copy is "hot" and waits for the frozen copy instead. Then every filesystem is synced, frozen
together, the last dirty chunks are read into memory, everything is thawed, and only then are
those chunks stored. The image is every chunk's last copy: the disk as it was while frozen.

A pass that lost trace events (ring-buffer overrun) is redone in full, after a fresh settle and a
fresh used-block map; never a silent gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from liferaft.disk.imaging import Pieces, Plan, chunk_free
from liferaft.errors import SourceTooBusy
from liferaft.format import UNSTORED
from liferaft.ops.cancel import check
from liferaft.ops.imager import Imager
from liferaft.repo.image import SnapshotImage
from liferaft.repo.repository import Repository
from liferaft.source.changes import Mark, Since
from liferaft.source.providers import LiveView

SETTLED_BYTES = 32 << 20
"""A dirty set this small is read while frozen rather than re-copied live once more."""
MAX_LOST = 3


@dataclass
class LiveStats:
    passes: int = 0
    reread_bytes: int = 0
    """Bytes read after the first pass (re-copies, frozen copy)."""
    frozen_chunks: int = 0
    freeze_ms: float = 0.0
    frozen_at: float = 0.0
    """Wall clock at the freeze: the instant the image stands for."""
    lost_events: int = 0
    """Passes redone in full because the trace lost events."""
    plan: Plan | None = field(default=None, repr=False)

    def record(self) -> dict[str, object]:
        return {
            "passes": self.passes,
            "reread_bytes": self.reread_bytes,
            "frozen_chunks": self.frozen_chunks,
            "freeze_ms": round(self.freeze_ms, 1),
            "frozen_at": round(self.frozen_at, 6),
            "lost_event_passes": self.lost_events,
        }


def copy_live(
    im: Imager,
    src: LiveView,
    plan: Plan,
    replan: Callable[[], Plan],
    only: set[int] | None = None,
) -> LiveStats:
    """Fill im's table with the image of src as of one freeze. only: the chunks that can differ
    from the table's current entries (change tracking); None copies every used chunk."""
    stats = LiveStats(plan=plan)
    opts = src.options
    label = src.reader.path
    _first_pass(im, plan, only, f"live copy of {label}")
    stats.passes = 1
    pending: set[int] = set()
    """Chunks written since their last copy."""
    hot: set[int] = set()
    """Chunks written again right after a re-copy: left for the frozen copy (at most half of its
    memory), since copying them live again is wasted work."""
    copied: set[int] = set()
    previous: int | None = None

    def recopy() -> None:
        nonlocal previous, copied
        todo = sorted(pending - hot)
        stats.passes += 1
        stats.reread_bytes += im.copy(((i, ()) for i in todo), f"pass {stats.passes}: re-copy", len(todo) * im.chunk)
        previous, copied = len(todo), set(todo)
        pending.difference_update(todo)

    def redo_all() -> None:
        """Events were lost: settle again, map used blocks afresh, copy everything used."""
        nonlocal previous, copied
        stats.lost_events += 1
        if stats.lost_events > MAX_LOST:
            raise SourceTooBusy(f"the write trace lost events {stats.lost_events} times; raise the trace buffer")
        with im.writer.quiet():
            src.settle()
        stats.plan = replan()
        stats.passes += 1
        stats.reread_bytes += _first_pass(im, stats.plan, None, f"pass {stats.passes}: full re-copy (trace events lost)")
        pending.clear()
        hot.clear()
        previous, copied = None, set()

    while True:
        check(im.cancel)
        taken = src.take()
        if taken.lost:
            redo_all()
            continue
        again = copied.intersection(taken.chunks)
        if len(hot | again) * im.chunk <= opts.frozen_memory // 2:
            hot.update(again)
        pending.update(taken.chunks)
        cold = len(pending - hot)
        shrinking = previous is None or cold < previous
        if cold * im.chunk > SETTLED_BYTES and shrinking and stats.passes < opts.max_passes:
            recopy()
            continue
        src.sync()  # so that the freeze has little left to flush
        taken = src.take()
        if taken.lost:
            redo_all()
            continue
        pending.update(taken.chunks)
        if len(pending) * im.chunk > opts.frozen_memory:
            if stats.passes >= opts.max_passes:
                raise SourceTooBusy(_busy(pending, im.chunk, stats.passes))
            recopy()
            continue
        frozen: list[tuple[int, bytes]] | None = None
        with im.writer.quiet(), src.freeze() as window:
            taken = src.take()
            if not taken.lost:
                pending.update(taken.chunks)
                if len(pending) * im.chunk <= opts.frozen_memory:
                    frozen = list(im.read_into_memory(sorted(pending)))
        stats.freeze_ms, stats.frozen_at = window.seconds * 1000, window.wall
        if taken.lost:
            redo_all()
            continue
        if frozen is None:
            if stats.passes >= opts.max_passes:
                raise SourceTooBusy(_busy(pending, im.chunk, stats.passes))
            recopy()
            continue
        stats.passes += 1
        stats.frozen_chunks = len(frozen)
        frozen_bytes = sum(len(d) for _, d in frozen)
        stats.reread_bytes += frozen_bytes
        im.bytes_read += frozen_bytes
        im.store(frozen)
        return stats


def _first_pass(im: Imager, plan: Plan, only: set[int] | None, what: str) -> int:
    jobs: Iterator[tuple[int, Pieces]] = chunk_free(plan.free_extents(), im.chunk, im.size)
    if only is None:
        return im.copy(jobs, what, im.size)
    return im.copy((j for j in jobs if j[0] in only), what, len(only) * im.chunk)


def _busy(pending: set[int], chunk: int, passes: int) -> str:
    return f"{len(pending) * chunk >> 20} MiB still changing after {passes} passes"


def use_tracking(repo: Repository, im: Imager, src: LiveView, source: str) -> tuple[set[int] | None, dict[str, object]]:
    """Change tracking for this backup of source (read through src's device): marks a new epoch at
    the device's tracker (for the next backup) and, when the tracker vouches for everything written
    since the last snapshot of this source, fills im's table from that snapshot and returns the
    chunks to read. Otherwise None (read every used chunk and compare ids), with a note saying why."""
    device, tracker = src.reader.path, src.tracker
    now = tracker.mark(device)
    record: dict[str, object] = {"tracker": now.tracker, "epoch": now.epoch} if now else {}
    prev = None
    for _sid, snap in reversed(repo.snapshots(damaged=[])):  # a damaged one is no base: read and compare
        if snap.source == source and snap.size == im.size and snap.chunk_size == im.chunk:
            prev = snap
            break
    if prev is None:
        return None, record
    last = prev.stats.get("tracking") or {}
    if now is None:
        src.options.notes.append(
            f"no change tracker runs for {device}: every used chunk was read and compared "
            f"({tracker.hint(device)} so that later backups read only what changed)"
        )
        return None, record
    if last.get("tracker") != now.tracker:
        since = Since(None, "the last backup was not tracked by this tracker (restarted, or started later)")
    else:
        since = tracker.since(device, Mark(now.tracker, int(last.get("epoch", 0))))
    if since.ranges is None:
        src.options.notes.append(f"change tracking fell back to reading every used chunk: {since.why}")
        return None, record
    only: set[int] = set()
    for offset, length in since.ranges:
        only.update(range(offset // im.chunk, min(-(-(offset + length) // im.chunk), im.count)))
    with SnapshotImage(repo, prev, im.index) as image:
        for i, cid in enumerate(image.entries()):
            if cid in UNSTORED or im.writer.has(cid):
                im.set(i, cid)
            else:  # its pack was condemned (the last snapshot was forgotten meanwhile): read it again
                only.add(i)
    record.update({"used": True, "chunks": len(only)})
    return only, record
