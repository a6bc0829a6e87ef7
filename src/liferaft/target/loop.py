"""A loop device over a byte range of an image file or a block device, for the filesystem tools
that need a device of their own (resize2fs, e2fsck, ntfsresize). Always detached afterwards."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from liferaft.errors import TargetError


@contextmanager
def loop_device(path: str, offset: int, size: int) -> Iterator[str]:
    cmd = ["losetup", "-f", "--show", "--offset", str(offset), "--sizelimit", str(size), path]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise TargetError(path=path, detail=f"cannot attach a loop device: {run.stderr.strip()}")
    dev = run.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
