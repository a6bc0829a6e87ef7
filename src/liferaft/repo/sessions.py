"""Sessions and their leases: a run announces itself in the repository and keeps renewing.

Backups take no lock: each writes ``sessions/<session id>`` and renews it every ``renew_s``.
Maintenance (GC) holds one exclusive lease, ``sessions/maintenance``, taken with the store's
create-if-absent. A lease lapses when it was not renewed for ``term_s``; maintenance then may
treat its session as dead, so a lapsed session must never commit.

Ages come from the store's clock: a renewal is a write, and the store's time of that write
(``stat``) is compared with the store's time of the one before. A process paused past its term
(SIGSTOP, a suspended laptop, a network cut off) finds the gap on its next renewal, whichever
thread makes it, and ``check`` (before every commit) renews and refuses. The client's clock is
never trusted; a suspended machine's monotonic clock does not even advance.
Each renewal first reads the object back: if it is gone, or holds another session's record (a
maintenance lease taken over), the lease is lost as well.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import nullcontext

from liferaft.crypto.aead import AuthenticationFailed, Opener, Sealer
from liferaft.errors import LeaseHeld, LeaseLost, ObjectMissing, StoreError
from liferaft.format import FormatError
from liferaft.format.session import SessionRecord
from liferaft.format.settings import LEASE_TERM_S
from liferaft.repo import names
from liferaft.store.base import Store

SESSION_AD = b"liferaft session"
LEASE_RENEW_S = 60.0
"""Renewals come this often, or ten times a term where the repository's term is shorter."""
MAINTENANCE = f"{names.SESSIONS}/maintenance"


class Lease:
    """A session object, renewed by a thread until ``end``. ``lost`` is why it lapsed, if it did."""

    def __init__(
        self, store: Store, sealer: Sealer, command: str, exclusive: tuple[str, Opener] | None = None,
        term_s: float = LEASE_TERM_S,
    ) -> None:  # fmt: skip
        """exclusive: (object name, opener to read a holder's record) for a lease that only one
        run may hold, such as ``MAINTENANCE``; else the session's own object. term_s: the
        repository's lease term (its settings), written into the record for GC to judge by."""
        self._store, self._sealer = store, sealer
        self.name = exclusive[0] if exclusive else names.session(sealer.session_id)
        self.renew_s, self.term_s = min(LEASE_RENEW_S, term_s / 10), term_s
        self._started = time.time()
        self._command = command
        self._stop = threading.Event()
        self._renewing = threading.Lock()
        self.hold = threading.Lock()
        """Held, no renewal writes (while the filesystem under the repository may be frozen)."""
        self.lost: str | None = None
        self._written = b""
        self._stamp = 0.0
        if exclusive:
            self._take(exclusive[1])
        else:
            self._write()
        self._last_ok = time.monotonic()
        self._thread = threading.Thread(target=self._renew_loop, name="liferaft-lease", daemon=True)
        self._thread.start()

    def _record(self) -> bytes:
        rec = SessionRecord(socket.gethostname(), os.getpid(), self._command, self._started, time.time(), self.term_s)
        return self._sealer.seal(rec.to_bytes(), SESSION_AD)

    def _write(self) -> None:
        self._written = self._record()
        self._store.put(self.name, self._written)
        self._stamp = self._store.stat(self.name).mtime

    def _take(self, opener: Opener) -> None:
        """Create the exclusive lease object; a holder whose lease lapsed is replaced."""
        self._written = self._record()
        if self._store.create(self.name, self._written):
            self._stamp = self._store.stat(self.name).mtime
            return
        held = self._store.stat(self.name)
        now = self._store_now()
        if not lapsed(self._store, opener, held.name, now - held.mtime, self.term_s) and not _died_here(
            self._store, opener, self.name
        ):
            raise LeaseHeld(what=describe(self._store, opener, self.name), age=now - held.mtime, term=self.term_s)
        self._store.delete(self.name)  # lapsed, or its holder died on this machine
        if not self._store.create(self.name, self._written):
            raise LeaseHeld(what="another run", age=0.0, term=self.term_s)
        self._stamp = self._store.stat(self.name).mtime

    def _store_now(self) -> float:
        """The store's time now: that of a write made for the purpose."""
        probe = names.probe(self._sealer.session_id)
        self._store.put(probe, self._record())
        try:
            return self._store.stat(probe).mtime
        finally:
            self._store.delete(probe)

    @property
    def stamp(self) -> float:
        """The store's time of the last renewal."""
        return self._stamp

    def renew(self) -> None:
        """Read the object back, write it again, and set ``lost`` if it was gone, taken over,
        or not renewed within the term by the store's clock."""
        with self._renewing:
            before = self._stamp
            try:
                same = self._store.get(self.name) == self._written
            except ObjectMissing:
                self._lose("its session object was removed; maintenance took the session for dead")
                return
            if not same:
                self._lose("another run took it over")
                return
            self._write()
            gap = self._stamp - before
            if gap > self.term_s:
                self._lose(
                    f"not renewed for {gap:.0f} s by the repository's clock, more than its term of {self.term_s:.0f} s: "
                    "the process was paused or cut off from the repository"
                )

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why

    def check(self, hold: bool = True) -> None:
        """Before a commit: renew now, and raise LeaseLost if the lease lapsed at any time.
        hold=False: without taking ``hold`` (for a thread that ``hold``'s owner waits for)."""
        if self.lost is None:
            try:
                with self.hold if hold else nullcontext():
                    self.renew()
            except StoreError as exc:
                self._lose(f"it could not be renewed ({exc.message})")
        if self.lost is not None:
            raise LeaseLost(detail=self.lost)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                with self.hold:
                    self.renew()
                self._last_ok = time.monotonic()
            except StoreError as exc:
                if time.monotonic() - self._last_ok > self.term_s / 2:
                    self._lose(f"it could not be renewed ({exc.message})")

    def end(self) -> None:
        """Stop renewing and remove the object, if it is still this run's (not one that took
        the lease over)."""
        self._stop.set()
        self._thread.join()
        try:
            with self._renewing:
                if self._store.get(self.name) == self._written:
                    self._store.delete(self.name)
        except StoreError:
            pass  # gone already, or unreachable: a lapsed lease is harmless, maintenance ignores it after its term


def _holder(store: Store, opener: Opener, name: str) -> SessionRecord | None:
    try:
        return SessionRecord.from_bytes(opener.open(store.get(name), SESSION_AD))
    except (StoreError, AuthenticationFailed, FormatError):
        return None


def lapsed(store: Store, opener: Opener, name: str, age: float, term: float) -> bool:
    """Whether a session (or lease) object of this age (by the store's clock) has lapsed: it is
    older than the repository's term and than the term its holder wrote into it (a writer that
    started under a longer term keeps it)."""
    if age <= term:
        return False
    rec = _holder(store, opener, name)
    return rec is None or age > (rec.term or LEASE_TERM_S)


def _died_here(store: Store, opener: Opener, name: str) -> bool:
    """Whether the lease's holder ran on this machine and its process is gone (killed, or the
    machine rebooted): its lease need not be waited out."""
    rec = _holder(store, opener, name)
    if rec is None or rec.hostname != socket.gethostname() or rec.pid == os.getpid():
        return False
    try:
        os.kill(rec.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of that number runs (another user's)
    return False


def describe(store: Store, opener: Opener, name: str) -> str:
    """Who holds a lease, for messages: 'liferaft gc on host (pid 12)'."""
    rec = _holder(store, opener, name)
    if rec is None:
        return "another run"
    return f"'liferaft {rec.command}' on {rec.hostname} (pid {rec.pid})"
