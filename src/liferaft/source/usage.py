"""Who uses a device or image file: mounts (also of its partitions), loop devices backed by a
file, active swap. Read from /proc and /sys only, so it works for any filesystem type."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from liferaft.errors import SourceUnreadable, UsageError


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


@dataclass(frozen=True, slots=True)
class Mounted:
    """One mounted filesystem: its device ('major:minor'), first mount point and type."""

    dev: str
    mountpoint: str
    fstype: str


def _mountinfo() -> Iterator[tuple[str, str, str, str | None, str | None]]:
    """Each mount in /proc/self/mountinfo, in order: its device number ('major:minor'), mount
    point, filesystem type, and, when its source is a block device, that device's path and
    number (btrfs mounts carry an anonymous number of their own)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            parts, rest = head.split(), tail.split()
            if len(parts) < 5 or len(rest) < 2:
                continue
            src, source, source_dev = _unescape(rest[1]), None, None
            if src.startswith("/dev/"):
                try:
                    st = os.stat(src)
                    if stat.S_ISBLK(st.st_mode):
                        source, source_dev = os.path.realpath(src), f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
                except OSError:
                    pass
            yield parts[2], _unescape(parts[4]), rest[0], source, source_dev


def _mounts() -> dict[str, Mounted]:
    """'major:minor' of a block device -> its first mount (by the mount's own number or its
    source's)."""
    out: dict[str, Mounted] = {}
    for dev, mp, fstype, _source, source_dev in _mountinfo():
        for d in (dev, source_dev):
            if d is not None:
                out.setdefault(d, Mounted(d, mp, fstype))
    return out


def _sys_node(rdev: int) -> Path:
    """The sysfs directory of a block device number."""
    return Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}").resolve()


def _block_name(rdev: int) -> str | None:
    try:
        return _sys_node(rdev).name
    except OSError:
        return None


def _family(name: str) -> list[str]:
    """The device, its partitions and every device stacked on them (sysfs holders: device
    mapper, md), as 'major:minor' strings."""
    found: list[str] = []
    todo = [name]
    while todo:
        base = Path("/sys/class/block") / todo.pop(0)
        for d in [base, *sorted(p for p in base.glob(f"{base.name}*") if (p / "partition").exists())]:
            try:
                dev = (d / "dev").read_text().strip()
            except OSError:
                continue
            if dev not in found:
                found.append(dev)
                todo += sorted(h.name for h in (d / "holders").glob("*"))
    return found


def _loops_backed_by(path: Path) -> list[str]:
    target = os.path.realpath(path)
    out = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if backing.read_text().strip() == target:
                out.append(backing.parent.parent.name)
        except OSError:
            continue
    return out


def _swaps() -> set[str]:
    try:
        with open("/proc/swaps") as f:
            return {os.path.realpath(line.split()[0]) for line in list(f)[1:] if line.strip()}
    except OSError:
        return set()


def _holders(p: Path) -> list[str]:
    """Block device names that carry path: the device itself, or the loop devices backed by an
    image file."""
    try:
        st = p.stat()
    except OSError:
        return []
    if stat.S_ISBLK(st.st_mode):
        name = _block_name(st.st_rdev)
        return [name] if name else []
    if stat.S_ISREG(st.st_mode):
        return _loops_backed_by(p)
    return []


def mounted_filesystems(path: str | os.PathLike[str]) -> list[Mounted]:
    """Every filesystem mounted from the device (its partitions, devices stacked on them) or from
    a loop device backed by the image file; one entry per filesystem."""
    mounts = _mounts()
    return [mounts[dev] for name in _holders(Path(path)) for dev in _family(name) if dev in mounts]


def _device_of_mountpoint(path: str) -> str | None:
    """The block device of the filesystem mounted exactly at path (the last mount there wins,
    as it hides the others), or None when path is not a mountpoint of a block device."""
    target = os.path.realpath(path)
    found = None
    for dev, mp, _fstype, source, _source_dev in _mountinfo():
        if mp == target:
            found = source or (os.path.realpath(f"/dev/block/{dev}") if Path(f"/dev/block/{dev}").is_block_device() else None)
    return found


def _disk_of_partition(device: str) -> str | None:
    """/dev/sda for the partition /dev/sda2; None when device is no partition."""
    try:
        node = _sys_node(os.stat(device).st_rdev)
    except OSError:
        return None
    return f"/dev/{node.parent.name}" if (node / "partition").exists() else None


def source_device(path: str) -> tuple[str, str]:
    """What to image for path, with a note when that is not path itself: a mountpoint stands for
    its filesystem's device (``liferaft backup /``); any other directory is refused."""
    if not os.path.isdir(path):
        return path, ""
    device = _device_of_mountpoint(path)
    if device is None:
        raise SourceUnreadable(
            path=path,
            detail="a directory, not a block device or regular file: give the device or image file, or the "
            "mountpoint of a filesystem on a block device",
        )
    disk = _disk_of_partition(device)
    whole = f"; back up {disk} to include the partition table and boot code as well" if disk else ""
    return device, f"{path} is the filesystem on {device}: that device is imaged{whole}"


def traced_device(path: str) -> tuple[str, str]:
    """The block device whose writes change path: path itself, or for an image file the loop
    device through which its filesystems are mounted (with a note saying so)."""
    p = Path(path)
    if not p.is_file():
        return path, ""
    parts = []
    for name in _loops_backed_by(p):
        if mounted_filesystems(f"/dev/{name}"):
            loop = Path("/sys/block") / name / "loop"
            offset, limit = (int((loop / f).read_text()) for f in ("offset", "sizelimit"))
            if offset == 0 and limit in (0, p.stat().st_size):
                return f"/dev/{name}", f"{path} is attached to /dev/{name}: imaged through it"
            parts.append(f"/dev/{name}")
    if parts:
        raise UsageError(
            f"{path} is mounted only in part, through {', '.join(parts)}: back up that device instead, or attach the "
            "whole image (losetup -P) and mount its partitions from there"
        )
    return path, ""


def in_use(path: str | os.PathLike[str]) -> str | None:
    """Where the device or image file is in use ('mounted at /x', 'swap', 'loop0 mounted at /y'),
    or None when nothing holds it."""
    p = Path(path)
    if not p.exists():
        return None
    mounts = _mounts()
    for name in _holders(p):
        for dev in _family(name):
            if dev in mounts:
                through = "" if p.is_block_device() else f"{name} "
                return f"{through}mounted at {mounts[dev].mountpoint}"
    if os.path.realpath(p) in _swaps():
        return "active swap"
    return None


def openers(path: str | os.PathLike[str]) -> list[str]:
    """The other processes that hold path open ('pid 812 (dd)'), found through /proc/*/fd: a
    block device by its device number (any of its names), a file by its inode."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    device = stat.S_ISBLK(st.st_mode)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to see
        for fd in fds:
            try:
                other = os.stat(fd)
            except OSError:
                continue
            same = (
                other.st_rdev == st.st_rdev and stat.S_ISBLK(other.st_mode)
                if device
                else ((other.st_dev, other.st_ino) == (st.st_dev, st.st_ino))
            )
            if same:
                try:
                    name = (proc / "comm").read_text().strip()
                except OSError:
                    name = "?"
                found.append(f"pid {proc.name} ({name})")
                break
    return found
