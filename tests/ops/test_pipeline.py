"""The ordered, bounded map that every per-chunk loop runs on, alone and chained (read ahead,
then compute): order kept, memory bounded by the window, errors stop every thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from liferaft.ops.pipeline import device_readers, ordered_map


def _io_threads() -> int:
    return sum(t.name.startswith("liferaft-io") for t in threading.enumerate())


def test_order_is_kept_and_the_window_bounds_what_is_taken_ahead() -> None:
    taken = 0

    def items() -> Iterator[int]:
        nonlocal taken
        for i in range(200):
            taken += 1
            yield i

    seen = []
    for r in ordered_map(lambda x: x * 2, items(), workers=2, window=3):
        seen.append(r)
        assert taken - len(seen) <= 3  # never more than the window in flight: memory stays bounded
    assert seen == [2 * i for i in range(200)]
    assert _io_threads() == 0


def test_an_error_in_the_first_stage_of_a_chain_stops_both() -> None:
    def read(i: int) -> int:
        if i == 50:
            raise OSError("unreadable")
        return i

    first = ordered_map(read, range(1000), workers=4, window=8)
    second = ordered_map(lambda x: x + 1, first, workers=2, window=4)
    got = []
    with pytest.raises(OSError, match="unreadable"):
        for r in second:
            got.append(r)
    second.close()
    first.close()
    # what came out is in order and all from before the error (results still in the window when it
    # came are dropped: the error propagates at once)
    assert got == list(range(1, len(got) + 1)) and len(got) <= 50
    assert _io_threads() == 0


def test_closing_a_chain_early_stops_every_thread() -> None:
    first = ordered_map(lambda i: i, range(10_000), workers=4, window=8)
    second = ordered_map(lambda x: x, first, workers=2, window=4)
    assert next(second) == 0
    second.close()
    first.close()
    assert _io_threads() == 0


def test_device_readers_grow_with_cores_but_stay_few() -> None:
    assert device_readers(2) == 4
    assert device_readers(64) == 8
