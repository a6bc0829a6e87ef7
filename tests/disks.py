"""Real test disks: a partition table made with sfdisk, each partition formatted with its own
mkfs and populated through its own driver (mount for ext, ntfs-3g for NTFS, mtools for FAT), and
the tools' own views to compare with: fsck, file trees, free-space counts."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SAMPLE = Path("/usr/share/doc/bash")
"""A small real file tree to copy into each filesystem."""


def sh(*cmd: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({run.returncode}): {run.stdout}{run.stderr}")
    return run.stdout.strip()


MTOOLS = {"MTOOLS_SKIP_CHECK": "1"}


@dataclass(frozen=True)
class Part:
    fs: str
    """ext2 ext3 ext4 ext4-64 ext4-bigalloc ntfs fat16 fat32 swap raw"""
    mib: int


@contextmanager
def partition_loop(image: Path, number: int, readonly: bool = False) -> Iterator[str]:
    start, sectors = sh("partx", "-g", "-o", "START,SECTORS", "-n", str(number), str(image)).split()
    args = ["losetup", "-f", "--show", "--offset", str(int(start) * 512), "--sizelimit", str(int(sectors) * 512)]
    dev = sh(*args, *(["-r"] if readonly else []), str(image))
    try:
        yield dev
    finally:
        subprocess.run(["umount", "-l", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@contextmanager
def mounted(dev: str, where: Path, fs: str, readonly: bool = False) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if fs == "ntfs":
        sh("ntfs-3g", *(["-o", "ro"] if readonly else []), dev, str(where))
    else:
        sh("mount", *(["-o", "ro"] if readonly else []), dev, str(where))
    try:
        yield where
    finally:
        sh("umount", str(where), check=False)


def make_disk(path: Path, table: str, parts: list[Part], work: Path) -> list[int]:
    """A disk image with the given partitions, formatted and populated; their numbers."""
    total = 2 + sum(p.mib for p in parts) + (2 * len(parts) if table == "mbr" else 0) + 2
    sh("truncate", "-s", f"{total}M", str(path))
    lines = [f"label: {'gpt' if table == 'gpt' else 'dos'}"]
    numbers = []
    types = (
        {"swap": "S", "ntfs": "7", "fat16": "6", "fat32": "c"}
        if table == "mbr"
        else {
            "swap": "S",
            "ntfs": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
            "fat16": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
            "fat32": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        }
    )
    if table == "mbr" and len(parts) > 4:  # three primaries, then an extended one with the rest
        for p in parts[:3]:
            lines.append(f"size={p.mib}MiB, type={types.get(p.fs, 'L')}")
        lines.append("type=E")
        for p in parts[3:]:
            lines.append(f"size={p.mib}MiB, type={types.get(p.fs, 'L')}")
        numbers = [1, 2, 3, *range(5, 5 + len(parts) - 3)]
    else:
        for p in parts:
            lines.append(f"size={p.mib}MiB, type={types.get(p.fs, 'L')}")
        numbers = list(range(1, len(parts) + 1))
    subprocess.run(["sfdisk", "-q", str(path)], input="\n".join(lines) + "\n", text=True, check=True, capture_output=True)
    for n, p in zip(numbers, parts, strict=True):
        with partition_loop(path, n) as dev:
            format_and_fill(dev, p.fs, work / f"m{n}", seed=n)
    return numbers


def format_and_fill(dev: str, fs: str, where: Path, seed: int) -> None:
    payload = os.urandom(300_000) + bytes(200_000) + f"partition {seed}\n".encode() * 1000
    if fs.startswith("ext"):
        kind, *extra = fs.split("-")
        opts = {"64": ["-O", "64bit"], "bigalloc": ["-O", "bigalloc", "-C", "16384"]}.get("-".join(extra), [])
        sh(f"mkfs.{kind}", "-q", "-F", *opts, "-L", f"lr{seed}", dev)
        with mounted(dev, where, fs) as m:
            sh("cp", "-a", str(SAMPLE), str(m / "doc"))
            (m / "payload.bin").write_bytes(payload)
            big = m / "deleted.bin"  # stale data in free space
            big.write_bytes(os.urandom(2 << 20))
            sh("sync")
            big.unlink()
    elif fs == "ntfs":
        sh("mkntfs", "-q", "-F", "-Q", "-L", f"NT{seed}", dev)
        with mounted(dev, where, fs) as m:
            sh("cp", "-r", str(SAMPLE), str(m / "doc"))
            (m / "payload.bin").write_bytes(payload)
    elif fs.startswith("fat"):
        sh("mkfs.vfat", "-F", fs[3:], "-n", f"FAT{seed}", dev)
        src = where.with_suffix(".src")
        src.mkdir(parents=True, exist_ok=True)
        (src / "payload.bin").write_bytes(payload)
        sh("mcopy", "-s", "-i", dev, str(SAMPLE), "::/doc", env=MTOOLS)
        sh("mcopy", "-i", dev, str(src / "payload.bin"), "::/payload.bin", env=MTOOLS)
    elif fs == "swap":
        sh("mkswap", "-L", f"sw{seed}", dev)
    elif fs == "raw":
        with open(dev, "wb") as f:
            f.write(os.urandom(1 << 20))


def free_bytes_by_tool(dev: str, fs: str) -> int:
    """Free space as the filesystem's own tool counts it."""
    if fs.startswith("ext"):
        out = sh("dumpe2fs", "-h", dev)
        free = int(re.search(r"^Free blocks:\s+(\d+)", out, re.M).group(1))  # type: ignore[union-attr]
        bs = int(re.search(r"^Block size:\s+(\d+)", out, re.M).group(1))  # type: ignore[union-attr]
        return free * bs
    if fs == "ntfs":
        out = sh("ntfsinfo", "-f", "-m", dev)  # -f: a resized volume is marked for a Windows check
        free = int(re.search(r"Free Clusters:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        size = int(re.search(r"Cluster Size:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        return free * size
    if fs.startswith("fat"):
        out = sh("fsck.fat", "-n", "-v", dev)
        used, total = map(int, re.search(r"(\d+)/(\d+) clusters", out).groups())  # type: ignore[union-attr]
        cluster = int(re.search(r"(\d+) bytes per cluster", out).group(1))  # type: ignore[union-attr]
        return (total - used) * cluster
    raise ValueError(fs)


def fsck(dev: str, fs: str) -> None:
    if fs.startswith("ext"):
        sh("e2fsck", "-fn", dev)
    elif fs == "ntfs":
        sh("ntfsfix", "-n", dev)
    elif fs.startswith("fat"):
        sh("fsck.vfat", "-n", dev)


def tree(dev: str, fs: str, where: Path) -> dict[str, bytes]:
    """Every file's path and content (and symlink targets) in the filesystem on dev."""
    if fs.startswith("fat"):
        out = where.with_suffix(".copy")
        sh("rm", "-rf", str(out))
        out.mkdir(parents=True)
        sh("mcopy", "-s", "-i", dev, "::/*", str(out), env=MTOOLS)
        return _walk(out)
    with mounted(dev, where, fs, readonly=True) as m:
        return _walk(m)


def _walk(root: Path) -> dict[str, bytes]:
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel.startswith(("lost+found", "$", "System Volume")):
            continue
        if p.is_symlink():
            found[rel] = b"-> " + os.readlink(p).encode()
        elif p.is_file():
            found[rel] = p.read_bytes()
        elif p.is_dir():
            found[rel + "/"] = b""
    return found


def make_fs(dev: str, fs: str) -> None:
    """A fresh, empty filesystem: ext4, xfs, btrfs or ntfs."""
    if fs == "ntfs":
        sh("mkntfs", "-Q", "-F", "-q", dev)
    elif fs == "ext4":
        sh("mkfs.ext4", "-q", "-F", dev)
    else:
        sh(f"mkfs.{fs}", "-q", "-f", dev)


def gpt_image(path: Path, mib: int, parts_mib: list[int]) -> Path:
    """A sparse image file with a GPT holding partitions of these sizes."""
    sh("truncate", "-s", f"{mib}M", str(path))
    table = "label: gpt\n" + "".join(f"size={n}M\n" for n in parts_mib)
    subprocess.run(["sfdisk", "-q", str(path)], input=table, text=True, check=True)
    return path
