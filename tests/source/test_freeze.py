"""Freezing a real mounted ext4 under the watchdog: writers wait during the window and go on
after it; a hang or a kill -9 of the freezing process is thawed by the watchdog within the bound;
a filesystem frozen by another program is waited for, then refused."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liferaft.errors import FreezeBusy, FreezeExpired, FreezeFailed
from liferaft.source.linux import freeze
from liferaft.source.linux.freeze import frozen, thaw
from tests.conftest import PYTHON, mounted_ext4, sh


@pytest.fixture
def ext4(tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path]) -> Iterator[Path]:
    mnt = mounted_ext4(tmp_path, loopdev, mount, "64M")
    yield mnt
    thaw(str(mnt))  # whatever happened, never leave it frozen


def writer(mnt: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", f"echo data > {mnt}/f && sync -f {mnt}/f"])


def test_writers_wait_during_the_window_and_go_on_after(ext4: Path) -> None:
    with frozen([str(ext4)], max_freeze=10) as window:
        w = writer(ext4)
        time.sleep(0.5)
        assert w.poll() is None  # blocked by the freeze
    assert w.wait(timeout=10) == 0
    assert (ext4 / "f").read_text() == "data\n"
    assert 0.5 <= window.seconds < 5


def test_a_hang_is_thawed_at_the_bound(ext4: Path) -> None:
    started = time.monotonic()
    with pytest.raises(FreezeExpired, match="watchdog thawed"), frozen([str(ext4)], max_freeze=1):
        w = writer(ext4)
        assert w.wait(timeout=10) == 0  # the watchdog thawed after ~1 s, so the writer got through
        assert 0.9 < time.monotonic() - started < 5


def test_kill_9_during_the_freeze_is_thawed_at_once(ext4: Path) -> None:
    script = (
        "import sys, time\n"
        "from liferaft.source.linux.freeze import frozen\n"
        f"with frozen([{str(ext4)!r}], max_freeze=30):\n"
        "    print('frozen', flush=True)\n"
        "    time.sleep(120)\n"
    )
    p = subprocess.Popen([PYTHON, "-B", "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    assert p.stdout is not None and p.stdout.readline() == b"frozen\n"
    w = writer(ext4)
    time.sleep(0.3)
    assert w.poll() is None  # frozen
    p.kill()
    p.wait()
    killed = time.monotonic()
    assert w.wait(timeout=10) == 0  # thawed when the parent died, long before the 30 s bound
    assert time.monotonic() - killed < 5


def test_freezing_something_that_cannot_be_frozen_leaves_nothing_frozen(ext4: Path, tmp_path: Path) -> None:
    with pytest.raises(FreezeFailed), frozen([str(ext4), "/proc"], max_freeze=5):
        pass  # pragma: no cover - never reached
    w = writer(ext4)
    assert w.wait(timeout=10) == 0  # the first filesystem was thawed again


def test_a_filesystem_frozen_by_another_program_is_waited_for(ext4: Path) -> None:
    sh("fsfreeze", "-f", str(ext4))  # as another backup of the same filesystem would
    thawer = threading.Timer(0.5, sh, ("fsfreeze", "-u", str(ext4)))
    thawer.start()
    try:
        started = time.monotonic()
        with frozen([str(ext4)], max_freeze=10) as window:
            w = writer(ext4)
            time.sleep(0.2)
            assert w.poll() is None  # frozen by us now
        assert window.started - started >= 0.4  # our window began after the other program's ended
        assert window.seconds < 2
        assert w.wait(timeout=10) == 0
    finally:
        thawer.join()


def test_a_filesystem_that_stays_frozen_by_another_program_is_refused(ext4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freeze, "BUSY_SLACK_S", 0.5)
    sh("fsfreeze", "-f", str(ext4))
    started = time.monotonic()
    busy = pytest.raises(FreezeBusy, match=f"{ext4} was frozen by another program.*fsfreeze -u")
    with busy, frozen([str(ext4)], max_freeze=0.5):
        pass  # pragma: no cover - never reached
    assert 0.9 < time.monotonic() - started < 5
    sh("fsfreeze", "-u", str(ext4))  # ours to undo: liferaft never thaws what it did not freeze
    assert writer(ext4).wait(timeout=10) == 0
