"""Cancellation: a token that another thread sets (the daemon running backups on worker
threads, a service being stopped) and that a long operation checks between its steps.

Every per-chunk loop goes through ``pipeline.ordered_map``, which checks the token before it
hands out a job and before it yields a result; a set token raises ``Interrupted`` there, so the
operation ends the way Ctrl-C ends it: what has started is waited for, nothing is committed half
way (a backup leaves only unreferenced packs, a restore removes its partial file), and the
command's exit code is Interrupted's (130). The CLI keeps turning Ctrl-C, SIGTERM and SIGHUP into
KeyboardInterrupt in the main thread; a token is for code that runs an operation on another
thread.
"""

from __future__ import annotations

import threading

from liferaft.errors import Interrupted


class Cancel:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.why = ""

    def set(self, why: str = "cancelled") -> None:
        self.why = why
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def check(self) -> None:
        """Raise Interrupted when the token is set."""
        if self._event.is_set():
            raise Interrupted()


def check(cancel: Cancel | None) -> None:
    if cancel is not None:
        cancel.check()
