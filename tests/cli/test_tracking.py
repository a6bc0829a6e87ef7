"""Changed-block tracking: ``liferaft track`` runs beside a mounted, busy ext4; the second live
backup reads only what was written since the first; a tracker restarted in between is detected and
the backup falls back to reading every used chunk. Every image is checked by content."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liferaft.source.linux.blocktrace import TRACEFS, remove_stale
from liferaft.source.linux.tracking import socket_path, state_path
from tests.cli.test_live import Writers, check_restored, live_backup, live_fs, start_writers
from tests.conftest import PYTHON, Result, as_on_a_terminal, sh

__all__ = ["live_fs", "start_writers"]  # the fixtures, shared with the live tests


@pytest.fixture
def tracker() -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """tracker(device) -> the running `liferaft track` process (socket up), stopped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(device: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [PYTHON, "-m", "liferaft", "track", "-q", device], cwd=Path(__file__).parents[2], preexec_fn=as_on_a_terminal
        )
        procs.append(p)
        for _ in range(200):  # up when its state names it (a killed one's socket may linger)
            try:
                if json.loads(state_path(device).read_text())["pid"] == p.pid:
                    return p
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("liferaft track did not start")

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
    remove_stale(TRACEFS)  # the instance of a tracker killed with -9


def new_file(where: Path, name: str, mib: int) -> bytes:
    data = os.urandom(mib << 20)
    (where / name).write_bytes(data)
    return data


def test_tracking_across_backups_and_fallback_when_interrupted(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount, live_fs, start_writers: Writers, tracker
) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = live_fs("ext4", 320)
    ballast = new_file(mnt, "ballast.bin", 96)  # a full backup has plenty to read
    t1 = tracker(dev)
    journals = start_writers(mnt, 5e5)
    first = live_backup(cli, repo, dev)
    assert first["live"]["tracking"]["tracker"]  # type: ignore[index]
    # a day of change, then the tracked incremental reads only it
    one = new_file(mnt, "day1.bin", 8)
    second = live_backup(cli, repo, dev)
    tracked = second["live"]["tracking"]  # type: ignore[index]
    assert tracked["used"] is True and tracked["chunks"] >= 8
    first_pass = int(second["bytes_read"]) - int(second["live"]["reread_bytes"])  # type: ignore[call-overload, index]
    assert first_pass <= tracked["chunks"] << 20  # only the tracked chunks were read in pass 1
    assert first_pass < (int(first["bytes_read"]) - int(first["live"]["reread_bytes"])) // 2  # type: ignore[call-overload, index]
    assert not second["notes"]
    out = tmp_path / "second.img"
    assert cli("restore", "latest", str(out), "--verify", repo=repo).code == 0
    check_restored(loopdev(out), "ext4", tmp_path / "r2", journals, float(second["live"]["frozen_at"]), mount)  # type: ignore[index]
    restored = tmp_path / "r2" / "check"
    assert (restored / "day1.bin").read_bytes() == one and (restored / "ballast.bin").read_bytes() == ballast
    sh("umount", str(restored))
    # tracking interrupted: the tracker dies and a new one starts; the change in between is
    # known to nobody, so the next backup must fall back (and still catch it)
    t1.kill()
    t1.wait()
    two = new_file(mnt, "day2.bin", 4)
    tracker(dev)
    third = live_backup(cli, repo, dev)
    assert "used" not in third["live"]["tracking"]  # type: ignore[operator]
    assert any("fell back to reading every used chunk" in n for n in third["notes"])  # type: ignore[attr-defined]
    assert int(third["bytes_read"]) > 96 << 20  # type: ignore[call-overload]
    out3 = tmp_path / "third.img"
    assert cli("restore", "latest", str(out3), repo=repo).code == 0
    check_restored(loopdev(out3), "ext4", tmp_path / "r3", journals, float(third["live"]["frozen_at"]), mount)  # type: ignore[index]
    assert (tmp_path / "r3" / "check" / "day2.bin").read_bytes() == two
    # the fallback backup was marked by the new tracker: the one after it is tracked again
    fourth = live_backup(cli, repo, dev)
    assert fourth["live"]["tracking"]["used"] is True  # type: ignore[index]
    snaps = json.loads(cli("snapshots", "--json", repo=repo).out)
    assert len(snaps) == 4


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["term", "hangup"])
def test_a_tracker_stops_cleanly(tmp_path: Path, loopdev, tracker, sig: int) -> None:  # type: ignore[no-untyped-def]
    img = tmp_path / "disk.img"
    sh("truncate", "-s", "16M", str(img))
    dev = loopdev(img)
    p = tracker(dev)
    p.send_signal(sig)  # a service stopped, or the ssh session that started it closed
    assert p.wait(timeout=20) == 0
    assert not state_path(dev).exists() and not socket_path(dev).exists()
    assert not list((TRACEFS / "instances").glob(f"liferaft-{p.pid}-*"))  # its trace is gone too
