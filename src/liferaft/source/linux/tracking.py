"""Changed-block tracking between backups: ``liferaft track SOURCE`` keeps a write trace of the
device running and remembers, per 256 KiB grain, the last epoch in which it was written.

A live backup marks a new epoch before its freeze and records (tracker, epoch) in its snapshot.
The next backup asks "what was written since that epoch?" and reads only those chunks. The answer
is refused, and the backup falls back to reading every used chunk and comparing ids, whenever the
tracker cannot vouch for the whole interval: it was restarted (a new tracker id; a reboot also
clears /run), its trace lost events since that epoch, or it is not running at all.

The tracker serves a unix socket (/run/liferaft/track-MAJOR-MINOR.sock, one JSON request per
connection) and persists its state (ids, epochs and the grain map, compressed) next to it, so the
map can be inspected and outlives a crash of a backup; /run is a tmpfs, so it never outlives the
boot it describes.
"""

from __future__ import annotations

import array
import base64
import json
import os
import signal
import socket
import stat
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liferaft.errors import SourceUnreadable, UsageError
from liferaft.source.changes import Mark, Since
from liferaft.source.device import size_of
from liferaft.source.linux.blocktrace import BlockTrace
from liferaft.source.options import BUFFER_KB

RUN_DIR = Path("/run/liferaft")
GRAIN = 256 * 1024
"""Tracking granularity: the smallest chunk size a repository may have."""
DRAIN_EVERY_S = 1.0
"""Between requests (each of which drains first): the ring buffer holds far more than a second of
events, and a drain a second keeps a tracker under a busy writer near idle."""
PERSIST_EVERY_S = 5.0


def _dev_key(device: str) -> str:
    """MAJOR-MINOR of a block device; SourceUnreadable for anything else."""
    try:
        st = os.stat(device)
    except OSError as exc:
        raise SourceUnreadable(path=device, detail=exc.strerror or str(exc)) from None
    if not stat.S_ISBLK(st.st_mode):
        raise SourceUnreadable(
            path=device,
            detail="not a block device: tracking follows a device's writes (an image file is tracked through the "
            "loop device its mounted filesystems use)",
        )
    return f"{os.major(st.st_rdev)}-{os.minor(st.st_rdev)}"


def socket_path(device: str) -> Path:
    return RUN_DIR / f"track-{_dev_key(device)}.sock"


def state_path(device: str) -> Path:
    return RUN_DIR / f"track-{_dev_key(device)}.json"


class Tracker:
    """The long-running side: trace, epoch map, socket server."""

    def __init__(self, device: str, buffer_kb: int = BUFFER_KB) -> None:
        self.device = device
        _dev_key(device)  # a block device, or SourceUnreadable
        if _ask(device, {"op": "hello"}) is not None:
            raise UsageError(f"a change tracker already runs for {device} (see {state_path(device)})")
        self.id = os.urandom(8).hex()
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.size = size_of(fd, True)
        finally:
            os.close(fd)
        self.grains = -(-self.size // GRAIN)
        self.written = array.array("I", bytes(4 * self.grains))
        """Per grain: the last epoch in which it was written (0: not since the tracker started)."""
        self.epoch = 1
        self.lost_epoch = 0
        """Events were lost during this epoch: no answer for epochs up to it."""
        self.started = time.time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self.sock_path, self.state_path = socket_path(device), state_path(device)
        self.trace = BlockTrace(device, buffer_kb)
        self._overruns = 0  # a fresh instance: any overrun at all is a loss

    def _drain(self, check_overruns: bool = True) -> None:
        """Caller holds the lock. Overruns are checked before every answer (mark, since) and at
        each persist; found later than they happened, they only refuse more epochs."""
        e, written, last = self.epoch, self.written, self.grains - 1
        for offset, length in self.trace.drain():
            first, end = offset // GRAIN, min((offset + length - 1) // GRAIN, last)
            if first == end:
                written[first] = e
            else:
                written[first : end + 1] = array.array("I", [e]) * (end + 1 - first)
        if check_overruns:
            overruns = self.trace.overruns()
            if overruns != self._overruns:
                self._overruns, self.lost_epoch = overruns, e

    def mark(self) -> Mark:
        with self._lock:
            self._drain()
            self.epoch += 1
            return Mark(self.id, self.epoch)

    def since(self, tracker: str, epoch: int) -> Since:
        with self._lock:
            self._drain()
            if tracker != self.id:
                return Since(None, "the tracker was restarted since the last backup")
            if epoch > self.epoch or epoch < 1:
                return Since(None, "the last backup's epoch is unknown to this tracker")
            if epoch <= self.lost_epoch:
                return Since(None, "the write trace lost events since the last backup")
            out: list[tuple[int, int]] = []
            for g, e in enumerate(self.written):
                if e >= epoch:
                    if out and out[-1][0] + out[-1][1] == g * GRAIN:
                        out[-1] = (out[-1][0], out[-1][1] + GRAIN)
                    else:
                        out.append((g * GRAIN, GRAIN))
            return Since(out)

    def persist(self) -> None:
        """Drain (overruns included), then write the state file: it is current when written."""
        with self._lock:
            self._drain()
            state = {
                "tracker": self.id,
                "pid": os.getpid(),
                "device": self.device,
                "size": self.size,
                "grain": GRAIN,
                "started": self.started,
                "epoch": self.epoch,
                "lost_epoch": self.lost_epoch,
                "saved": time.time(),
                "written": base64.b64encode(zlib.compress(self.written.tobytes(), 1)).decode(),
            }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while not data.endswith(b"\n"):
                got = conn.recv(4096)
                if not got:
                    return
                data += got
            req = json.loads(data)
            if req.get("op") == "hello":
                reply: dict[str, object] = {"ok": True, "tracker": self.id}
            elif req.get("op") == "mark":
                m = self.mark()
                reply = {"ok": True, "tracker": m.tracker, "epoch": m.epoch}
            elif req.get("op") == "since":
                s = self.since(str(req.get("tracker")), int(req.get("epoch", 0)))
                reply = {"ok": s.ranges is not None, "ranges": s.ranges, "why": s.why}
            else:
                reply = {"ok": False, "why": f"unknown request {req.get('op')!r}"}
            conn.sendall(json.dumps(reply).encode() + b"\n")

    def serve(self, ready: Callable[[], None] = lambda: None) -> None:
        """Run until SIGTERM/SIGINT/SIGHUP (or stop()); the socket, the state and the trace instance
        are removed at the end."""
        self.sock_path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.sock_path))
        os.chmod(self.sock_path, 0o600)
        server.listen(8)
        server.settimeout(DRAIN_EVERY_S)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup's ignored hang-up stays ignored
                    signal.signal(sig, lambda *_: self._stop.set())
        self.persist()
        ready()
        persisted = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = server.accept()
                    self._handle(conn)
                except (OSError, ValueError, TypeError, AttributeError):
                    pass  # no request within the tick, or a malformed one: tracking goes on
                if time.monotonic() - persisted > PERSIST_EVERY_S:
                    self.persist()  # drains, overruns included
                    persisted = time.monotonic()
                else:
                    with self._lock:
                        self._drain(check_overruns=False)
        finally:
            server.close()
            self.sock_path.unlink(missing_ok=True)
            self.state_path.unlink(missing_ok=True)
            self.trace.close()

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True, slots=True)
class Status:
    tracker: str
    pid: int
    started: float
    saved: float
    epoch: int
    lost_epoch: int
    changed_bytes: int
    """Written since the latest mark (the last backup's start), as of ``saved``."""


def status(device: str) -> Status | None:
    """What the device's running tracker last persisted; None when none runs."""
    _dev_key(device)  # a block device, or SourceUnreadable
    if _ask(device, {"op": "hello"}) is None:
        return None
    try:
        state = json.loads(state_path(device).read_text())
        written = array.array("I")
        written.frombytes(zlib.decompress(base64.b64decode(state["written"])))
        epoch = int(state["epoch"])
        changed = sum(1 for e in written if e >= epoch) * int(state["grain"])
        return Status(
            str(state["tracker"]),
            int(state["pid"]),
            float(state["started"]),
            float(state["saved"]),
            epoch,
            int(state["lost_epoch"]),
            changed,
        )
    except (OSError, ValueError, KeyError, zlib.error):
        return None


def _ask(device: str, request: dict[str, object]) -> dict[str, object] | None:
    """One request to the device's tracker; None when none is running."""
    try:
        path = socket_path(device)
    except (OSError, SourceUnreadable):
        return None
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(path))
            s.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                got = s.recv(1 << 20)
                if not got:
                    return None
                data += got
        reply = json.loads(data)
        return reply if isinstance(reply, dict) else None
    except (OSError, ValueError):
        return None


def mark(device: str) -> Mark | None:
    """Start a new epoch at the device's tracker, if one runs."""
    reply = _ask(device, {"op": "mark"})
    if not reply or not reply.get("ok"):
        return None
    return Mark(str(reply["tracker"]), int(str(reply["epoch"])))


def written_since(device: str, tracker: str, epoch: int) -> Since:
    reply = _ask(device, {"op": "since", "tracker": tracker, "epoch": epoch})
    if reply is None:
        return Since(None, "no change tracker is running for the device (liferaft track)")
    ranges = reply.get("ranges")
    if not reply.get("ok") or not isinstance(ranges, list):
        return Since(None, str(reply.get("why") or "the tracker gave no answer"))
    return Since([(int(a), int(n)) for a, n in ranges])


class TraceTracker:
    """The ``ChangeTracker`` (``source.changes``) of a ``liferaft track`` process per device."""

    def mark(self, device: str) -> Mark | None:
        return mark(device)

    def since(self, device: str, at: Mark) -> Since:
        return written_since(device, at.tracker, at.epoch)

    def hint(self, device: str) -> str:
        return f"keep `liferaft track {device}` running"
