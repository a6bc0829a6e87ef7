"""The change tracker on a real loop device: epochs, the ranges written since one, and refusal when
events were lost or the tracker is another one."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liferaft.errors import UsageError
from liferaft.source.linux import tracking
from liferaft.source.linux.tracking import GRAIN, Tracker
from tests import writers
from tests.conftest import sh


def dd_write(dev: str, offset: int, length: int) -> None:
    sh(
        "dd",
        "if=/dev/urandom",
        f"of={dev}",
        f"bs={length}",
        "count=1",
        f"seek={offset}",
        "oflag=direct,seek_bytes",
        "conv=notrunc",
    )


@pytest.fixture
def served(tmp_path: Path, loopdev: Callable[..., str]) -> Iterator[tuple[str, Tracker]]:
    img = tmp_path / "d.img"
    sh("truncate", "-s", "64M", str(img))
    dev = loopdev(img)
    t = Tracker(dev, buffer_kb=64)
    up = threading.Event()
    th = threading.Thread(target=t.serve, args=(up.set,))
    th.start()
    assert up.wait(10)
    yield dev, t
    t.stop()
    th.join()
    assert not t.sock_path.exists() and not t.trace.instance.exists()


def test_written_since_an_epoch(served: tuple[str, Tracker]) -> None:
    dev, t = served
    dd_write(dev, 5 * GRAIN + 4096, 4096)
    first = tracking.mark(dev)
    assert first is not None and first.tracker == t.id
    dd_write(dev, 40 * GRAIN, 2 * GRAIN)  # two grains
    dd_write(dev, 100 * GRAIN - 512, 1024)  # straddles grains 99 and 100
    second = tracking.mark(dev)
    assert second is not None and second.epoch == first.epoch + 1
    since = tracking.written_since(dev, t.id, first.epoch)
    assert since.ranges == [(40 * GRAIN, 2 * GRAIN), (99 * GRAIN, 2 * GRAIN)]  # not grain 5: before the mark
    assert tracking.written_since(dev, t.id, second.epoch).ranges == []
    assert tracking.written_since(dev, "another", first.epoch).why.startswith("the tracker was restarted")
    for bad in ({"op": "since", "epoch": "x"}, {"op": "since", "epoch": [1]}, ["not", "an", "object"]):
        tracking._ask(dev, bad)  # type: ignore[arg-type]  # a malformed request does not stop it
    assert tracking.written_since(dev, t.id, second.epoch).ranges == []
    state = t.state_path.read_text()
    assert t.id in state  # persisted for inspection


def test_lost_events_refuse_every_earlier_epoch(served: tuple[str, Tracker]) -> None:
    dev, t = served
    before = tracking.mark(dev)
    assert before is not None
    writers.flood_trace(t.trace.instance)  # overflows the 64 KiB ring buffer
    since = tracking.written_since(dev, t.id, before.epoch)
    assert since.ranges is None and "lost events" in since.why
    after = tracking.mark(dev)  # a later epoch is fine again
    assert after is not None
    dd_write(dev, 7 * GRAIN, 4096)
    assert tracking.written_since(dev, t.id, after.epoch).ranges == [(7 * GRAIN, GRAIN)]


def test_a_second_tracker_for_the_device_is_refused(served: tuple[str, Tracker]) -> None:
    dev, _t = served
    with pytest.raises(UsageError, match="already runs"):
        Tracker(dev)


def test_no_tracker_running_is_an_answer_not_an_error(
    tmp_path: Path, loopdev: Callable[..., str], cli: Callable[..., object]
) -> None:
    img = tmp_path / "d.img"
    sh("truncate", "-s", "8M", str(img))
    dev = loopdev(img)
    assert tracking.mark(dev) is None and tracking.status(dev) is None
    assert "no change tracker is running" in tracking.written_since(dev, "x", 1).why
    r = cli("track", "--status", dev)  # for monitoring: exit 1
    assert r.code == 1 and "no change tracker runs" in r.out  # type: ignore[attr-defined]


def test_status_for_monitoring(served: tuple[str, Tracker], cli: Callable[..., object]) -> None:
    dev, t = served
    tracking.mark(dev)
    dd_write(dev, 3 * GRAIN, 2 * GRAIN)
    t.persist()
    st = tracking.status(dev)
    assert st is not None and st.tracker == t.id and st.pid == os.getpid() and st.changed_bytes == 2 * GRAIN
    r = cli("track", "--status", dev)
    assert r.code == 0 and t.id in r.out and "512.0 KiB written since the last backup began" in r.out  # type: ignore[attr-defined]
