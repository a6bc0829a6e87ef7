"""Writing a restore target: an image file (sparse: zero chunks stay holes) or a block device
(zero chunks zeroed with BLKZEROOUT, falling back to writing zeros). Refuses targets in use, too
small, or (without force) larger or existing.

Writes are os.pwrite (which releases the GIL) through the page cache, with write-behind
(source.writeback): writeback starts at once and at most a window of the target stays cached.

A new image file is built under a partial name beside the target and renamed onto it only once
complete and flushed (``staged``): an interrupted or failed restore never leaves a half image
under the target's name, and a file being replaced (``--force``) stays whole until then."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from liferaft.errors import Interrupted, LiferaftError, TargetError, TargetExists, TargetInUse, TargetLarger, TargetTooSmall
from liferaft.source.device import size_of
from liferaft.source.linux import kernel
from liferaft.source.usage import in_use, openers
from liferaft.target.writeback import WritebackFailed, WriteBehind

ZERO_BLOCK = bytes(1 << 20)


BLOCK = 4096
PARTIAL = ".liferaft-partial"
"""Suffix of the file a restore builds beside its target file."""


@contextmanager
def staged(target: str, force: bool) -> Iterator[str]:
    """The path to restore target through: target itself for a block device; for an image file,
    TARGET.liferaft-partial in the same folder, renamed onto target (mode and owner of the file
    it replaces kept) when the body completes, and removed when it fails. Refuses an existing
    file without force, one whose filesystems are mounted, one that another restore is writing,
    and anything that is neither a file nor a device, before any writing."""
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise TargetError(path=target, detail=exc.strerror or str(exc)) from None
    if st is not None and stat.S_ISBLK(st.st_mode):
        yield target
        return
    real = os.path.realpath(target)  # a symlink to an image: replace the file it points to
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise TargetError(path=target, detail="not a regular file or block device")
    if st is not None and not force:
        raise TargetExists(path=target)
    holder = in_use(real) if st is not None else None
    if holder is not None:  # replacing it would leave its filesystems on the old file, unseen
        raise TargetInUse(path=target, detail=holder)
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise TargetError(path=target, detail=f"no such folder {folder}")
    partial = real + PARTIAL
    lock = _claim(partial, target)
    try:
        yield partial
        if st is not None:
            os.chown(partial, st.st_uid, st.st_gid)
            os.chmod(partial, stat.S_IMODE(st.st_mode))
        os.rename(partial, real)
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)  # the rename itself is durable
        finally:
            os.close(dfd)
    except BaseException as exc:
        with suppress(OSError):  # not created, or a read-only folder
            os.unlink(partial)
        before = "is as it was" if st is not None else "was not created"
        if isinstance(exc, Interrupted | KeyboardInterrupt):
            raise Interrupted(f"the partial image was removed; {target} {before}") from None
        if isinstance(exc, LiferaftError) and exc.fields.get("path") == partial:
            exc.fields["path"] = target  # messages name the file the user gave
        raise
    finally:
        os.close(lock)


def _claim(partial: str, target: str) -> int:
    """A descriptor of partial holding its exclusive lock, kept until the restore ends. Another
    restore to the same target holds it already, and is not to be mixed with (refused); what a
    killed one left behind is not locked, and is reused."""
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise TargetError(path=target, detail=exc.strerror or str(exc)) from None
    return _exclusive(fd, target)


def _exclusive(fd: int, target: str) -> int:
    """fd, holding the exclusive lock a restore writing target keeps until it closes fd; a second
    restore finds it taken and is refused (fd closed), rather than mixed into the same file."""
    try:
        kernel.lock_exclusive(fd)
    except OSError:
        os.close(fd)
        raise TargetInUse(path=target, detail="another liferaft restore is writing it") from None
    return fd


def reread_partitions(device: str) -> str:
    """Have the kernel re-read the partition table just restored onto device (BLKRRPART, as
    partitioning tools do), so that its partition devices (/dev/sdc1, ...) are the restored ones;
    '' when it did, else a note saying what to run (a loop device without partition scanning
    refuses, for one)."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            kernel.reread_partitions(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return (
            f"the kernel did not re-read the partition table of {device} ({exc.strerror or exc}): "
            f"run 'partx -u {device}' before using its partitions"
        )
    return ""


def changed_runs(data: bytes, old: bytes | bytearray | None = None) -> list[tuple[int, int]]:
    """[start, end) of the runs of BLOCK-sized blocks of data that differ from old (the same
    length; None: from zeros). What a write must cover to turn old into data."""
    zero = ZERO_BLOCK[:BLOCK]
    runs: list[tuple[int, int]] = []
    start = -1
    for at in range(0, len(data), BLOCK):
        same = data[at : at + BLOCK] == (zero if old is None else old[at : at + BLOCK])
        if same:
            if start >= 0:
                runs.append((start, at))
                start = -1
        elif start < 0:
            start = at
    if start >= 0:
        runs.append((start, len(data)))
    return runs


class TargetWriter:
    def __init__(self, path: str, image_size: int, force: bool = False, existing: bool = False) -> None:
        """existing: write into what the target holds (delta restore): it must exist, and a
        file is neither truncated nor treated as holes."""
        self.path = path
        self.image_size = image_size
        self.fresh = False
        """A file created (or truncated) here: unwritten ranges already read as zeros."""
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        self.is_device = st is not None and stat.S_ISBLK(st.st_mode)
        self.fd = -1
        try:
            if self.is_device:
                self._open_device(force)
            elif existing:
                self._open_existing_file(st, force)
            else:
                self._open_file(st, force)
        except OSError as exc:
            raise TargetError(path=path, detail=exc.strerror or str(exc)) from None
        self._behind = WriteBehind(self.fd)

    def _open_device(self, force: bool) -> None:
        holder = in_use(self.path)
        if holder is not None:
            raise TargetInUse(path=self.path, detail=holder)
        users = openers(self.path)
        if users:  # a program reading or writing it would see a disk change under it, or change it back
            shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
            raise TargetInUse(path=self.path, detail=f"open in {shown}")
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise TargetInUse(path=self.path, detail="held open exclusively by another program") from None
            raise
        try:
            self._check_size(size_of(self.fd, True), force)
        except BaseException:
            os.close(self.fd)
            raise

    def _check_size(self, size: int, force: bool) -> None:
        """A target must hold the image; a larger one is used only with force."""
        if size < self.image_size:
            raise TargetTooSmall(path=self.path, target_size=size, image_size=self.image_size)
        if size > self.image_size and not force:
            raise TargetLarger(path=self.path, target_size=size, image_size=self.image_size)

    def _open_file(self, st: os.stat_result | None, force: bool) -> None:
        if st is not None:
            if not stat.S_ISREG(st.st_mode):
                raise TargetError(path=self.path, detail="not a regular file or block device")
            if not force:
                raise TargetExists(path=self.path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.ftruncate(self.fd, self.image_size)
        self.fresh = True

    def _open_existing_file(self, st: os.stat_result | None, force: bool) -> None:
        if st is None or not stat.S_ISREG(st.st_mode):
            raise TargetError(path=self.path, detail="a delta restore needs an existing image file or device")
        holder = in_use(self.path)
        if holder is not None:  # writing under mounted filesystems would corrupt them
            raise TargetInUse(path=self.path, detail=holder)
        self._check_size(st.st_size, force)
        self.fd = _exclusive(os.open(self.path, os.O_WRONLY | os.O_CLOEXEC), self.path)  # written in place

    def write(self, offset: int, data: bytes) -> None:
        """Write data at offset. In a fresh file, runs of zero blocks are left as holes (they
        already read as zeros): restored chunks carry the zeroed free space of their filesystem."""
        if self.fresh and len(data) % BLOCK == 0 and offset % BLOCK == 0 and ZERO_BLOCK[:BLOCK] in data:
            for at, end in changed_runs(data):
                self._write(offset + at, data[at:end])
            return
        self._write(offset, data)

    def _write(self, offset: int, data: bytes) -> None:
        self._pwrite(memoryview(data), offset)

    def _pwrite(self, view: memoryview, offset: int) -> None:
        start, n = offset, len(view)
        try:
            while view:
                done = os.pwrite(self.fd, view, offset)
                view, offset = view[done:], offset + done
            self._behind.written(start, n)
        except OSError as exc:
            detail = "the target's disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
            at = exc.offset if isinstance(exc, WritebackFailed) else offset
            raise TargetError(path=self.path, detail=f"{detail} at byte {at}") from None
        finally:
            view.release()

    def zero(self, offset: int, length: int) -> None:
        """Make [offset, offset+length) read as zeros: nothing to do in a fresh file (a hole),
        BLKZEROOUT on a device, zeros written otherwise."""
        if self.fresh:
            return
        if self.is_device:
            try:
                kernel.zero_out(self.fd, offset, length)
                return
            except OSError:
                pass  # not supported here: write the zeros
        for at in range(offset, offset + length, len(ZERO_BLOCK)):
            self._pwrite(memoryview(ZERO_BLOCK)[: min(len(ZERO_BLOCK), offset + length - at)], at)

    def discard(self, offset: int, length: int) -> None:
        """Free blocks: discarded on a device (BLKDISCARD; zeroed where that fails), a hole in a
        fresh file. Discarded blocks may read back as anything, so they are not verified."""
        if self.is_device:
            try:
                kernel.discard(self.fd, offset, length)
                return
            except OSError:
                pass
        self.zero(offset, length)

    def finish(self) -> None:
        try:
            os.fsync(self.fd)
            self._behind.drop()
        except OSError as exc:
            raise TargetError(path=self.path, detail=f"flushing failed: {exc.strerror}") from None
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
