"""Who uses a device or image file: mounts (also of its partitions), loop devices backed by a
file, active swap. Read from /proc and /sys only, so it works for any filesystem type."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _mounts() -> dict[str, str]:
    """'major:minor' -> first mount point, from /proc/self/mountinfo."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            out.setdefault(parts[2], _unescape(parts[4]))
    return out


def _block_name(rdev: int) -> str | None:
    link = Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")
    try:
        return link.resolve().name
    except OSError:
        return None


def _family(name: str) -> list[str]:
    """The device and its partitions, as 'major:minor' strings."""
    base = Path("/sys/class/block") / name
    found = []
    for d in [base, *sorted(p for p in base.glob(f"{name}*") if (p / "partition").exists())]:
        try:
            found.append((d / "dev").read_text().strip())
        except OSError:
            continue
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


def in_use(path: str | os.PathLike[str]) -> str | None:
    """Where the device or image file is in use ('mounted at /x', 'swap', 'loop0 mounted at /y'),
    or None when nothing holds it."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    mounts = _mounts()
    names: list[tuple[str, str]] = []  # (prefix for the message, block device name)
    if stat.S_ISBLK(st.st_mode):
        name = _block_name(st.st_rdev)
        if name:
            names.append(("", name))
    elif stat.S_ISREG(st.st_mode):
        names += [(f"{loop} ", loop) for loop in _loops_backed_by(p)]
    for prefix, name in names:
        for dev in _family(name):
            if dev in mounts:
                return f"{prefix}mounted at {mounts[dev]}".strip()
    if os.path.realpath(p) in _swaps():
        return "active swap"
    return None
