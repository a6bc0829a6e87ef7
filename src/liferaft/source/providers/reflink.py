"""The reflink provider: an image file that may be in use (a running VM's disk) on a filesystem
with shared extents (XFS with reflink, btrfs). FICLONE makes an instant copy-on-write clone next
to the file; the clone is opened and unlinked at once (it vanishes even if liferaft is killed),
then read while the original keeps changing. The view is the file as of the clone: what a power
cut would have left (crash-consistent)."""

from __future__ import annotations

import dataclasses
import os
import stat

from liferaft.errors import SourceUnreadable
from liferaft.source.device import SourceReader
from liferaft.source.linux import kernel
from liferaft.source.options import LiveOptions
from liferaft.source.providers import StaticView


class ReflinkProvider:
    name = "reflink"

    def open(self, path: str, chunk_size: int, options: LiveOptions) -> StaticView:
        """Crash-consistent: the clone is the file as a power cut would have left it."""
        try:
            st = os.stat(path)
        except OSError as exc:
            raise SourceUnreadable(path=path, detail=exc.strerror or "cannot stat") from None
        if not stat.S_ISREG(st.st_mode):
            raise SourceUnreadable(path=path, detail="the reflink provider clones image files, not devices")
        folder, name = os.path.split(os.path.abspath(path))
        clone = os.path.join(folder, f".{name}.liferaft-clone-{os.getpid()}-{os.urandom(3).hex()}")
        try:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SourceUnreadable(path=path, detail=exc.strerror or "cannot open") from None
        try:
            dst = os.open(clone, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            os.close(src)
            raise SourceUnreadable(path=path, detail=f"cannot create a clone beside it ({exc.strerror})") from None
        try:
            kernel.clone(dst, src)
            reader = SourceReader(clone, chunk_size, rescue=options.rescue)
        except OSError as exc:
            raise SourceUnreadable(
                path=path,
                detail=f"cannot clone it ({exc.strerror}): reflink needs XFS with reflink or btrfs; "
                "otherwise stop what uses the file and back it up with --provider plain",
            ) from None
        finally:
            os.unlink(clone)  # the open reader keeps the clone's data until it is closed
            os.close(dst)
            os.close(src)
        reader.path = path
        reader.info = dataclasses.replace(reader.info, path=path)
        return StaticView(reader, crash_consistent=True)
