"""The one place a store stack is composed from a repository location."""

from __future__ import annotations

import os
from collections.abc import Callable

from liferaft.store.base import Store
from liferaft.store.faults import CRASH_ENV, FaultStore
from liferaft.store.local import LocalStore
from liferaft.store.memory import MemoryStore


def _local(rest: str) -> Store:
    return LocalStore(rest)


def _memory(rest: str) -> Store:
    return MemoryStore()


SCHEMES: dict[str, Callable[[str], Store]] = {"file": _local, "memory": _memory}


def open_store(location: str) -> Store:
    """A store for 'file:///path', 'memory://' or a plain path (a local folder); with a crash
    point on top when the crash tests ask for one (``faults.CRASH_ENV``)."""
    store = _open(location)
    crash_at = os.environ.get(CRASH_ENV, "")
    return FaultStore(store, crash_at_write=int(crash_at)) if crash_at.isdigit() else store


def _open(location: str) -> Store:
    scheme, sep, rest = location.partition("://")
    if not sep:
        return LocalStore(location)
    try:
        factory = SCHEMES[scheme]
    except KeyError:
        from liferaft.errors import UsageError

        raise UsageError(f"unknown repository scheme {scheme!r}: use a path or one of {sorted(SCHEMES)}") from None
    return factory(rest)
