"""Which files hold given bytes of a filesystem, where the filesystem can say: ext2/3/4, through
e2fsprogs' debugfs (``icheck`` maps blocks to inodes, ``ncheck`` inodes to paths), reading only
the metadata it needs from a filesystem image (a partition's file in a snapshot's mount, or a
device). Other filesystems cannot say here: XFS would need a full ``xfs_db blockget``, btrfs a
mounted filesystem.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CAN_SAY = ("ext2", "ext3", "ext4")
MOST_BLOCKS = 1 << 20
"""Blocks asked about at most (4 GiB at 4 KiB blocks); past that the answer names the first ones."""
PER_LINE = 256
SPECIAL = {1: "(bad blocks list)", 2: "/", 5: "(boot loader inode)", 7: "(resize inode)", 8: "(the journal)"}
"""ext's reserved inodes that hold blocks."""


@dataclass(slots=True)
class FilesHit:
    files: list[str] = field(default_factory=list)
    """Paths (every hard link), and the reserved inodes named in parentheses."""
    other_bytes: int = 0
    """Bytes in no file: the filesystem's own metadata (inode tables, bitmaps, directories
    counted as files) or free space."""
    note: str = ""
    """Why the answer is partial or missing (debugfs could not read the filesystem)."""


def files_hit(image: Path, fs: str, block_size: int, ranges: list[tuple[int, int]]) -> FilesHit | None:
    """The files holding bytes [start, end) of the filesystem in image (ranges relative to its
    start); None where the filesystem cannot say (not ext, or debugfs missing)."""
    if fs not in CAN_SAY or block_size <= 0 or not shutil.which("debugfs"):
        return None
    blocks: list[int] = []
    for lo, hi in ranges:
        if hi > lo:
            blocks.extend(range(lo // block_size, min((hi - 1) // block_size + 1, lo // block_size + MOST_BLOCKS)))
        if len(blocks) >= MOST_BLOCKS:
            break
    blocks = sorted(set(blocks))[:MOST_BLOCKS]
    hit = FilesHit()
    if not blocks:
        return hit
    out, err = _debugfs(image, "icheck", blocks)
    owners: set[int] = set()
    answered = 0
    for line in out.splitlines():
        m = re.fullmatch(r"(\d+)\s+(\d+|<block not found>)", line.strip())
        if m:
            answered += 1
            if m.group(2).isdigit():
                owners.add(int(m.group(2)))
            else:
                hit.other_bytes += block_size
    if answered < len(blocks):
        hit.note = f"debugfs answered for {answered} of {len(blocks)} blocks ({_first_error(err) or 'no reason given'})"
    hit.files = sorted(SPECIAL.get(i, f"(inode {i})") for i in owners if i < 11)
    ordinary = sorted(i for i in owners if i >= 11)
    if ordinary:
        out, err = _debugfs(image, "ncheck", ordinary)
        named: set[int] = set()
        for line in out.splitlines():
            m = re.fullmatch(r"(\d+)\s+(/.*)", line.rstrip("\n"))
            if m:
                named.add(int(m.group(1)))
                hit.files.append(re.sub("^/+", "/", m.group(2)))  # entries of the root read '//name'
        hit.files += [f"(inode {i}, no name found)" for i in ordinary if i not in named]
    if len(blocks) == MOST_BLOCKS:
        hit.note = (hit.note + "; " if hit.note else "") + f"only the first {MOST_BLOCKS} blocks were looked up"
    return hit


def _debugfs(image: Path, command: str, numbers: list[int]) -> tuple[str, str]:
    """debugfs's output for command over numbers (PER_LINE to a line), and its messages."""
    commands = [f"{command} {' '.join(map(str, numbers[i : i + PER_LINE]))}" for i in range(0, len(numbers), PER_LINE)]
    with tempfile.NamedTemporaryFile("w", prefix="liferaft-debugfs-", suffix=".cmd") as f:
        f.write("\n".join(commands) + "\n")
        f.flush()
        r = subprocess.run(["debugfs", "-f", f.name, str(image)], capture_output=True, text=True, errors="replace")
    return r.stdout, r.stderr


def _first_error(err: str) -> str:
    lines = [line.strip() for line in err.splitlines() if line.strip() and not line.startswith("debugfs ")]
    return lines[0] if lines else ""
