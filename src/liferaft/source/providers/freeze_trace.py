"""The freeze_trace provider: a consistent image of a disk whose filesystems are mounted and
being written, without a kernel module and without LVM (docs/design.md, "Live images").

This module gives the parts; ``ops.live`` runs the passes. A LiveSource finds every filesystem
mounted from the source, traces the writes queued to and completed on the device into a per-chunk
dirty map (a thread drains the trace all the time, so the ring buffer does not fill), and freezes
all the filesystems together under the watchdog of ``source.freeze``. Everything the frozen window
runs is imported here, at load time, so no lazy import writes a .pyc file to a frozen filesystem.
"""

from __future__ import annotations

import array
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from liferaft.errors import HookFailed, SourceUnreadable, UsageError
from liferaft.source.changes import ChangeTracker
from liferaft.source.device import SourceReader
from liferaft.source.linux import kernel
from liferaft.source.linux.blocktrace import BlockTrace
from liferaft.source.linux.freeze import Window, frozen
from liferaft.source.linux.tracking import TraceTracker
from liferaft.source.options import LiveOptions
from liferaft.source.providers import Taken
from liferaft.source.usage import Mounted, mounted_filesystems, traced_device

DRAIN_EVERY_S = 0.05
_DIRTY = re.compile(b"\x01")


def syncfs(mountpoint: str) -> None:
    """Write back one filesystem's dirty pages and journal (syncfs(2)); errors are not fatal
    here: the freeze flushes whatever is left."""
    fd = os.open(mountpoint, os.O_RDONLY | os.O_CLOEXEC)
    try:
        kernel.syncfs(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def run_hook(which: str, command: str) -> None:
    """Run a --pre-freeze / --post-thaw command through the shell; a failure raises HookFailed."""
    try:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise HookFailed(which=which, detail="it ran for more than 600 s") from None
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise HookFailed(which=which, detail=f"exit status {done.returncode}: {tail[0]}")


class LiveSource:
    """A mounted source being traced. close() it always: the trace instance and the drain thread
    must go away."""

    live = True

    def __init__(self, path: str, chunk_size: int, options: LiveOptions) -> None:
        sys.dont_write_bytecode = True  # no .pyc file is written from here on (the source may hold them)
        self.options = options
        self.mounts: list[Mounted] = mounted_filesystems(path)
        if not self.mounts:
            raise UsageError(f"nothing is mounted from {path}: back it up with --provider plain")
        device, note = traced_device(path)
        if note:
            options.notes.append(note)
        self.unfreezable: list[str] | None = None
        self.tracker: ChangeTracker = TraceTracker()
        """What was written since the last backup, when a ``liferaft track`` follows the device."""
        self.reader = SourceReader(device, chunk_size, rescue=options.rescue)
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._dirty = bytearray(self.reader.chunk_count)
        self._generation = 1
        """Drains completed so far, plus one: stamps writes and copies (see take)."""
        self._written = array.array("I", bytes(4 * self.reader.chunk_count))
        """Per chunk: the generation of the drain that last saw a write to it."""
        self._copied = array.array("I", bytes(4 * self.reader.chunk_count))
        """Per chunk: the generation when its last copy began."""
        self._stop = threading.Event()
        self._error: BaseException | None = None
        try:
            self.trace = BlockTrace(device, options.trace_buffer_kb)
        except BaseException:
            self.reader.close()
            raise
        self._overruns = 0  # a fresh instance: any overrun at all is a loss
        self._thread = threading.Thread(target=self._drain_loop, name="liferaft-trace", daemon=True)
        self._thread.start()

    @property
    def mountpoints(self) -> list[str]:
        return [m.mountpoint for m in self.mounts]

    def _drain(self) -> None:
        """Move traced writes into the dirty map; the caller holds the lock."""
        last, gen = len(self._dirty) - 1, self._generation
        for offset, length in self.trace.drain():
            first, end = offset // self.chunk_size, min((offset + length - 1) // self.chunk_size, last)
            self._dirty[first : end + 1] = b"\x01" * (end + 1 - first)
            self._written[first : end + 1] = array.array("I", [gen]) * (end + 1 - first)
        self._generation = gen + 1

    def copying(self, index: int) -> None:
        """Called just before chunk index is read: its copy begins now."""
        self._copied[index] = self._generation

    def _drain_loop(self) -> None:
        while not self._stop.wait(DRAIN_EVERY_S):
            try:
                with self._lock:
                    self._drain()
            except BaseException as exc:  # reported by the next take()
                self._error = exc
                return

    def take(self) -> Taken:
        """The chunks written since the last take (or since tracing began) and start afresh.

        On a request-based disk every write is traced again when it completes, so a chunk whose
        last write was drained before its last copy began was copied with that write in it:
        it is left out. (A drain stamped g ends before the generation becomes g + 1, so a copy
        that began at a later generation began after those writes had landed.)"""
        with self._lock:
            if self._error is not None:
                raise SourceUnreadable(path=self.trace.dev, detail=f"the write trace failed: {self._error}")
            self._drain()
            dirty, self._dirty = self._dirty, bytearray(len(self._dirty))
            overruns = self.trace.overruns()
            lost, self._overruns = overruns != self._overruns, overruns
            chunks = [m.start() for m in _DIRTY.finditer(dirty)]
            if self.trace.completions:
                chunks = [i for i in chunks if self._written[i] >= self._copied[i]]
        return Taken(chunks, lost)

    def settle(self) -> None:
        """Let writes queued before tracing began land: a brief freeze and thaw of every
        filesystem (which flushes them). From here on every write is in the trace. The first
        settle also learns which filesystems have no freeze at all (FUSE, FAT): those are synced
        instead, and their part of the image is crash-consistent (noted)."""
        first = self.unfreezable is None
        self.sync()
        with frozen(self.freezable, self.options.max_freeze, allow_unsupported=first) as window:
            pass
        if first:
            self.unfreezable = window.unsupported
            for mp in self.unfreezable:
                kind = next(m.fstype for m in self.mounts if m.mountpoint == mp)
                self.options.notes.append(
                    f"{mp} ({kind}) cannot be frozen: it was synced and traced instead, so its part of the image is "
                    "crash-consistent (as after a power cut)"
                )

    @property
    def crash_consistent(self) -> bool:
        """Only filesystems that have no freeze (FUSE, FAT) make a live image crash-consistent."""
        return bool(self.unfreezable)

    @property
    def freezable(self) -> list[str]:
        return [mp for mp in self.mountpoints if mp not in (self.unfreezable or [])]

    def sync(self) -> None:
        for mp in self.mountpoints:
            syncfs(mp)

    @contextmanager
    def freeze(self) -> Iterator[Window]:
        """The pre-freeze hook, every filesystem frozen together under the watchdog, the
        post-thaw hook (a failure of that one is noted, not fatal: the copy is already good)."""
        if self.options.pre_freeze:
            run_hook("pre-freeze", self.options.pre_freeze)
        try:
            with frozen(self.freezable, self.options.max_freeze) as window:
                yield window
        finally:
            if self.options.post_thaw:
                try:
                    run_hook("post-thaw", self.options.post_thaw)
                except HookFailed as exc:
                    self.options.notes.append(exc.message)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.trace.close()
        self.reader.close()


class FreezeTraceProvider:
    name = "freeze_trace"

    def open(self, path: str, chunk_size: int, options: LiveOptions) -> LiveSource:
        return LiveSource(path, chunk_size, options)
