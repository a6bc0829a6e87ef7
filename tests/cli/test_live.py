"""Live backups (freeze_trace) of mounted ext4 and xfs, with writers running throughout: a SQLite
database in WAL mode, an fsync'ed append-only log and random overwrites of a large file. The
restored image must be the filesystems as of the freeze: clean (ext4 without journal replay, xfs
after its log replay), every commit from before the freeze present, nothing torn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import writers
from tests.conftest import PYTHON, Result, sh
from tests.disks import gpt_image, make_fs, partition_loop

HERE = Path(__file__).parents[1]
TRACEFS = Path("/sys/kernel/tracing/instances")
Writers = Callable[[Path], dict[str, Path]]


@pytest.fixture
def start_writers(tmp_path: Path) -> Iterator[Writers]:
    """start_writers(dir) -> {kind: journal}: all three writers on dir (a few MB/s each), stopped
    at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(where: Path, rate: float = 2e6) -> dict[str, Path]:
        journals = {}
        for kind in ("sqlite", "log", "overwrite"):
            journal = tmp_path / f"{where.name}-{kind}.journal"
            procs.append(subprocess.Popen([PYTHON, str(HERE / "writers.py"), kind, str(where), str(journal), str(rate)]))
            journals[kind] = journal
        for journal in journals.values():  # wait until each writes
            for _ in range(200):
                if journal.exists() and len(journal.read_text().splitlines()) > 3:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"writer {journal.name} did not start")
        return journals

    yield start
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(autouse=True)
def no_trace_left() -> Iterator[None]:
    """No liferaft tracefs instance of this process outlives a test (a leak keeps tracing)."""
    yield
    left = sorted(TRACEFS.glob(f"liferaft-{os.getpid()}-*"))
    for inst in left:
        inst.rmdir()
    assert not left, f"tracefs instances left behind: {left}"


@pytest.fixture
def live_fs(tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path]) -> Callable[..., tuple[str, Path]]:
    """live_fs(fs, mib) -> (loop device, mountpoint) of a fresh filesystem mounted at tmp/live."""

    def make(fs: str = "ext4", mib: int = 256) -> tuple[str, Path]:
        img = tmp_path / "fs.img"
        sh("truncate", "-s", f"{mib}M", str(img))
        dev = loopdev(img)
        make_fs(dev, fs)
        return dev, mount(dev, tmp_path / "live")

    return make


def gpt_disk(loopdev: Callable[..., str], tmp_path: Path, mib: int, parts: list[tuple[int, str]]) -> str:
    """A GPT disk image on a loop device with its partitions scanned, partition k made with the
    k-th filesystem of parts ((MiB, filesystem), ...)."""
    dev = loopdev(gpt_image(tmp_path / "disk.img", mib, [n for n, _ in parts]), partscan=True)
    for k, (_, fs) in enumerate(parts, 1):
        make_fs(f"{dev}p{k}", fs)
    return dev


def live_backup(cli: Callable[..., Result], repo: Path, source: str, *extra: str) -> dict[str, object]:
    r = cli("backup", "--json", *extra, source, repo=repo)
    assert r.code == 0, r.err
    res: dict[str, object] = json.loads(r.out)
    assert res["provider"] == "freeze_trace"
    return res


def check_restored(
    dev: str, fs: str, where: Path, journals: dict[str, Path], frozen_at: float, mount: Callable[..., Path]
) -> None:
    """fsck clean as the design promises, then every writer's data whole and complete up to the
    freeze."""
    if fs == "ext4":
        assert "needs_recovery" not in sh("dumpe2fs", "-h", dev), "ext4 image needs journal replay"
        sh("e2fsck", "-fn", dev)
    elif fs == "btrfs":  # copy-on-write: a frozen btrfs is consistent as it stands
        sh("btrfs", "check", "--readonly", dev)
    else:
        m = mount(dev, where / "replay", "-o", "nouuid")  # xfs replays its log, as after a power cut
        sh("umount", str(m))
        sh("xfs_repair", "-n", dev)
    m = mount(dev, where / "check", "-o", "ro,nouuid" if fs == "xfs" else "ro")
    writers.check_sqlite(m / "app.db", writers.committed_before(journals["sqlite"], frozen_at))
    writers.check_log(m / "append.log", writers.committed_before(journals["log"], frozen_at))
    writers.check_blocks(m / "big.bin")


@pytest.mark.parametrize("fs", ["ext4", "xfs", "btrfs"])
def test_single_filesystem_live_with_writers(
    fs: str, cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount, live_fs, start_writers: Writers
) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = live_fs(fs, 320)
    journals = start_writers(mnt)
    res = live_backup(cli, repo, dev)
    live = res["live"]
    assert isinstance(live, dict)
    assert live["mountpoints"] == [str(mnt)] and live["passes"] >= 2 and 0 < live["freeze_ms"] < 10_000
    # show --json reports the same facts
    show = json.loads(cli("show", "--json", "latest", repo=repo).out)
    assert show["provider"] == "freeze_trace" and show["stats"]["freeze_ms"] == live["freeze_ms"]
    assert show["stats"]["passes"] == live["passes"] and "reread_bytes" in show["stats"]
    out = tmp_path / "restored.img"
    assert cli("restore", "latest", str(out), "--verify", repo=repo).code == 0
    check_restored(loopdev(out), fs, tmp_path, journals, float(live["frozen_at"]), mount)


def test_whole_gpt_disk_with_ext4_and_xfs_live(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount, start_writers: Writers
) -> None:  # type: ignore[no-untyped-def]
    dev = gpt_disk(loopdev, tmp_path, 720, [(330, "ext4"), (340, "xfs")])
    m1, m2 = mount(f"{dev}p1", tmp_path / "p1"), mount(f"{dev}p2", tmp_path / "p2")
    j1, j2 = start_writers(m1), start_writers(m2)
    res = live_backup(cli, repo, dev)
    live = res["live"]
    assert isinstance(live, dict) and sorted(live["mountpoints"]) == sorted([str(m1), str(m2)])
    out = tmp_path / "restored.img"
    assert cli("restore", "latest", str(out), repo=repo).code == 0
    assert "gpt" in sh("sfdisk", "-d", str(out))
    with partition_loop(out, 1) as p1:
        check_restored(p1, "ext4", tmp_path / "r1", j1, float(live["frozen_at"]), mount)
        sh("umount", str(tmp_path / "r1" / "check"))
    with partition_loop(out, 2) as p2:
        check_restored(p2, "xfs", tmp_path / "r2", j2, float(live["frozen_at"]), mount)
        sh("umount", str(tmp_path / "r2" / "check"))


def test_forced_trace_overrun_still_gives_a_correct_image(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount, live_fs, start_writers: Writers
) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = live_fs("ext4", 256)
    journals = start_writers(mnt)

    def flood() -> None:
        """Once our trace instance exists, overflow its ring buffer with markers: lost events."""
        for _ in range(400):
            found = list(TRACEFS.glob(f"liferaft-{os.getpid()}-*"))
            if found:
                writers.flood_trace(found[0])
                return
            time.sleep(0.01)

    t = threading.Thread(target=flood)
    t.start()
    res = live_backup(cli, repo, dev, "--trace-buffer", "256")
    t.join()
    live = res["live"]
    assert isinstance(live, dict) and live["lost_event_passes"] >= 1
    out = tmp_path / "restored.img"
    assert cli("restore", "latest", str(out), repo=repo).code == 0
    check_restored(loopdev(out), "ext4", tmp_path, journals, float(live["frozen_at"]), mount)


def test_kill_9_during_the_freeze_thaws_and_writers_go_on(
    repo: Path, tmp_path: Path, loopdev, mount, live_fs, start_writers: Writers
) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = live_fs("ext4", 256)
    journals = start_writers(mnt)
    marker = tmp_path / "frozen-next"
    env = {**os.environ, "LIFERAFT_REPO": str(repo)}
    # the hook runs just before the freeze; the kill comes while frozen (a probe write hangs)
    hook = f"touch {marker}"
    cmd = [sys.executable, "-m", "liferaft", "backup", "-q", "--max-freeze", "30", "--max-passes", "1", "--pre-freeze", hook, dev]
    killed = False
    for _attempt in range(5):
        marker.unlink(missing_ok=True)
        p = subprocess.Popen(cmd, env=env, cwd=HERE.parent)
        while p.poll() is None and not marker.exists():
            time.sleep(0.005)
        while p.poll() is None and not killed:
            probe = subprocess.Popen(["sh", "-c", f"echo x > {mnt}/probe"])
            try:
                probe.wait(timeout=0.03)
            except subprocess.TimeoutExpired:  # frozen: kill liferaft now
                os.kill(p.pid, signal.SIGKILL)
                killed = True
                t0 = time.monotonic()
                assert probe.wait(timeout=5) == 0  # thawed at once by the watchdog, far inside 30 s
                assert time.monotonic() - t0 < 5
        p.wait()
        if killed:
            break
    assert killed, "never caught liferaft inside its freeze window"
    before = {k: len(j.read_text().splitlines()) for k, j in journals.items()}
    time.sleep(1.0)
    after = {k: len(j.read_text().splitlines()) for k, j in journals.items()}
    assert all(after[k] > before[k] for k in before), "writers stalled after the kill"
    # the next run cleans up the dead run's trace instance and backs up fine
    r = subprocess.run([*cmd[:3], "backup", "-q", "--json", dev], env=env, cwd=HERE.parent, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not [i for i in TRACEFS.glob(f"liferaft-{p.pid}-*")], "the killed run's trace instance was not removed"


def test_hook_failures_leave_the_system_running(cli: Callable[..., Result], repo: Path, tmp_path: Path, live_fs) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = live_fs("ext4", 64)
    r = cli("backup", "--pre-freeze", "echo flush failed >&2; exit 3", dev, repo=repo)
    assert r.code == 63 and "pre-freeze hook failed" in r.err and "flush failed" in r.err
    (mnt / "after").write_text("still writable")  # not frozen
    assert json.loads(cli("snapshots", "--json", repo=repo).out) == []
    # post-thaw failing is only a note: the copy was already good
    r = cli("backup", "--post-thaw", "exit 1", dev, repo=repo)
    assert r.code == 0 and "post-thaw hook failed" in r.err


def test_a_filesystem_without_freeze_is_synced_and_noted(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount, start_writers: Writers
) -> None:  # type: ignore[no-untyped-def]
    dev = gpt_disk(loopdev, tmp_path, 400, [(300, "ext4"), (90, "ntfs")])
    m1 = mount(f"{dev}p1", tmp_path / "p1")
    m2 = mount(f"{dev}p2", tmp_path / "p2", "-t", "ntfs-3g")  # FUSE: no freeze
    payload = os.urandom(3 << 20)
    (m2 / "data.bin").write_bytes(payload)
    journals = start_writers(m1)
    res = live_backup(cli, repo, dev)
    assert any(str(m2) in n and "cannot be frozen" in n for n in res["notes"])  # type: ignore[attr-defined]
    out = tmp_path / "restored.img"
    assert cli("restore", "latest", str(out), repo=repo).code == 0
    with partition_loop(out, 1) as p1:
        check_restored(p1, "ext4", tmp_path / "r1", journals, float(res["live"]["frozen_at"]), mount)  # type: ignore[index]
        sh("umount", str(tmp_path / "r1" / "check"))
    with partition_loop(out, 2) as p2:
        m = mount(p2, tmp_path / "r2", "-t", "ntfs-3g", "-o", "ro")
        assert (m / "data.bin").read_bytes() == payload  # synced before the copy, so it is there
        sh("umount", str(m))


def test_repository_on_the_frozen_filesystem_and_no_imports_in_the_window(
    cli: Callable[..., Result], tmp_path: Path, loopdev, mount, live_fs, start_writers: Writers, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The repository and the cache live on the very filesystem being frozen: any write to them
    inside the window would hang until the watchdog thawed (exit 61). Nothing is imported in
    the window either (an import may write a .pyc file)."""
    from contextlib import contextmanager

    from liferaft.source.providers import freeze_trace

    dev, mnt = live_fs("ext4", 320)
    monkeypatch.setenv("XDG_CACHE_HOME", str(mnt / "cache"))
    repo = mnt / "repo"
    assert cli("init", repo=repo).code == 0
    journals = start_writers(mnt)
    imported: list[set[str]] = []
    real = freeze_trace.frozen

    @contextmanager
    def watched(*args: object, **kw: object) -> Iterator[object]:
        with real(*args, **kw) as window:  # type: ignore[arg-type]
            before = set(sys.modules)
            yield window
            imported.append(set(sys.modules) - before)

    monkeypatch.setattr(freeze_trace, "frozen", watched)
    res = live_backup(cli, repo, dev, "--max-freeze", "5")
    assert len(imported) >= 2 and all(not new for new in imported), imported  # settle and the final freeze
    out = tmp_path / "restored.img"
    assert cli("restore", "latest", str(out), repo=repo).code == 0
    check_restored(loopdev(out), "ext4", tmp_path, journals, float(res["live"]["frozen_at"]), mount)  # type: ignore[index]


def test_an_image_file_mounted_through_a_loop_device_is_imaged_live_through_it(
    cli: Callable[..., Result], repo: Path, live_fs
) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = live_fs("ext4", 64)
    (mnt / "kept.txt").write_text("written before the backup\n")
    image = Path(sh("losetup", "-n", "-O", "BACK-FILE", dev))
    res = live_backup(cli, repo, str(image))
    # the snapshot is of the image file the user named (loop numbers change), read through dev
    assert res["source"] == str(image) and any(f"attached to {dev}" in n for n in res["notes"])  # type: ignore[attr-defined]
    listing = json.loads(cli("snapshots", "--json", "--source", str(image), repo=repo).out)
    assert [s["id"] for s in listing] == [res["snapshot_id"]]
    # plain is refused for it, naming the loop device's mount
    r = cli("backup", "--provider", "plain", str(image), repo=repo)
    assert r.code == 31 and str(mnt) in r.err


def test_an_image_mounted_only_in_part_is_refused_with_what_to_do(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, mount
) -> None:  # type: ignore[no-untyped-def]
    image = gpt_image(tmp_path / "disk.img", 200, [150])
    with partition_loop(image, 1) as part:  # an offset loop device: only the partition
        make_fs(part, "ext4")
        mnt = mount(part, tmp_path / "p1")
        r = cli("backup", str(image), repo=repo)
        assert r.code == 2 and f"mounted only in part, through {part}" in r.err and "losetup -P" in r.err
        sh("umount", str(mnt))


def test_a_mountpoint_stands_for_its_filesystems_device(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount
) -> None:  # type: ignore[no-untyped-def]
    dev = gpt_disk(loopdev, tmp_path, 200, [(150, "ext4")])
    mnt = mount(f"{dev}p1", tmp_path / "root")
    res = live_backup(cli, repo, str(mnt))
    assert res["source"] == f"{dev}p1" and res["size"] == 150 << 20
    assert any(f"back up {dev} to include the partition table" in n for n in res["notes"])  # type: ignore[attr-defined]
    r = cli("backup", str(tmp_path), repo=repo)  # a plain directory: what to give instead
    assert r.code == 30 and "a directory, not a block device" in r.err


def test_a_source_changing_faster_than_it_can_be_copied_fails_cleanly(
    cli: Callable[..., Result], repo: Path, live_fs, start_writers: Writers
) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = live_fs("ext4", 128)
    start_writers(mnt)
    r = cli("backup", "--max-passes", "1", "--freeze-memory", "1M", dev, repo=repo)
    assert r.code == 62 and "changed faster than it could be copied" in r.err and "MiB still changing" in r.err
    (mnt / "after").write_text("still writable")  # nothing left frozen
    assert json.loads(cli("snapshots", "--json", repo=repo).out) == []
    assert cli("verify", repo=repo).code == 0  # what the failed run wrote is unreferenced, harmless
