"""Providers: how a point-in-time view of a source is had, chosen by name from one registry.

Each provider's ``open`` gives a ``View``: a SourceReader over a view that does not change while
it is read (``plain``: a source nothing uses; ``reflink``: a clone of an image file in use), or, for
a ``live`` view (``freeze_trace``: mounted filesystems being written), one that is copied in
passes and frozen at the end (``ops.live``). A new provider is a module here with a class that
meets ``Provider``, plus one line in ``REGISTRY``; the CLI's choices, ``auto`` and the backup
follow from it. Modules are loaded by name when asked for, so the Linux-only ones
(``freeze_trace``, ``reflink``) are never imported on a platform that lacks what they need.
"""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from liferaft.source.device import SourceReader
from liferaft.source.options import LiveOptions

if TYPE_CHECKING:
    from liferaft.source.changes import ChangeTracker
    from liferaft.source.linux.freeze import Window

REGISTRY: dict[str, str] = {
    "plain": "liferaft.source.providers.plain:PlainProvider",
    "reflink": "liferaft.source.providers.reflink:ReflinkProvider",
    "freeze_trace": "liferaft.source.providers.freeze_trace:FreezeTraceProvider",
}
"""name -> 'module:class'."""


class View(Protocol):
    reader: SourceReader
    live: bool
    """Copied in passes while it changes, then frozen (``LiveView``); else it does not change."""

    @property
    def crash_consistent(self) -> bool:
        """The view is what a power cut would have left (a clone of a running VM's disk), not a
        frozen and flushed one: filesystems in it may need recovery (docs/design.md,
        "Consistency")."""
        ...

    def settle(self) -> None:
        """Make the filesystems' maps on the source current before they are read."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Taken:
    """The chunks written since the previous take, and whether trace events were lost (then any
    chunk may have been written)."""

    chunks: list[int]
    lost: bool


class LiveView(View, Protocol):
    """What ``ops.live`` needs of a view that changes while it is read."""

    options: LiveOptions
    tracker: ChangeTracker

    @property
    def mountpoints(self) -> list[str]: ...

    def copying(self, index: int) -> None:
        """Chunk index is about to be read whole (a copy that later writes make stale)."""
        ...

    def take(self) -> Taken: ...

    def sync(self) -> None: ...

    def freeze(self) -> AbstractContextManager[Window]: ...


class Provider(Protocol):
    name: str

    def open(self, path: str, chunk_size: int, options: LiveOptions) -> View:
        """A view of path; raises SourceInUse / SourceUnreadable."""
        ...


@dataclass
class StaticView:
    """A view that does not change while it is read."""

    reader: SourceReader
    crash_consistent: bool
    live = False

    def settle(self) -> None:
        pass

    def close(self) -> None:
        self.reader.close()


def names() -> list[str]:
    return list(REGISTRY)


def choose(path: str) -> str:
    """The provider for a source: freeze_trace when filesystems on it are mounted (a live
    system), plain otherwise."""
    from liferaft.source.usage import mounted_filesystems

    return "freeze_trace" if mounted_filesystems(path) else "plain"


def get(name: str) -> Provider:
    try:
        module, cls = REGISTRY[name].split(":")
    except KeyError:
        from liferaft.errors import UsageError

        raise UsageError(f"unknown provider {name!r}: choose one of {sorted([*REGISTRY, 'auto'])}") from None
    provider: Provider = getattr(importlib.import_module(module), cls)()
    return provider
