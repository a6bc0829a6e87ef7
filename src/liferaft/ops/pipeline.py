"""An ordered, bounded parallel map: the shape of every per-chunk loop (backup, restore, verify).

Jobs run on a thread pool (their per-byte steps release the GIL); results come back in input
order. At most ``window`` jobs are submitted ahead of the oldest unfinished one; only ``workers``
of them run at once, and a finished job holds just its small result, so memory is bounded whatever
the input size, while a slow job does not leave the other workers idle. An
error, Ctrl-C or a cancellation token cancels what has not started and waits for what has, then
propagates.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from liferaft.ops.cancel import Cancel, check

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """One thread per core: the per-byte steps are CPU-bound C calls. More threads only contend:
    two zstd compressors sharing a core evict each other's tables from its cache (measured: a
    live backup with 4 threads on 2 cores took 16% longer and 20% more CPU than with 2). Waiting
    on a device gets threads of its own instead (``Imager``, restore)."""
    return os.cpu_count() or 2


def device_readers(workers: int) -> int:
    """Threads that read ahead from an O_DIRECT device: enough to keep its queue full while the
    workers compute, and no more than 8 (1 MiB each in flight), whatever the number of cores."""
    return min(workers + 2, 8)


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, window: int | None = None,
    cancel: Cancel | None = None,
) -> Generator[R, None, None]:  # fmt: skip
    """window: jobs submitted ahead at most (default 16 per worker); keep it small where each
    item or result holds a chunk's bytes. cancel: checked before each job is handed out and each
    result is yielded (a set token raises Interrupted)."""
    workers = workers or default_workers()
    window = window or workers * 16
    pending: deque[Future[R]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="liferaft-io")
    try:
        for item in items:
            check(cancel)
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                result = pending.popleft().result()
                check(cancel)
                yield result
        while pending:
            result = pending.popleft().result()
            check(cancel)
            yield result
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
