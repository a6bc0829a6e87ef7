"""Providers: how a point-in-time view of a source is had. Each gives a SourceReader over a view
that does not change while it is read; ``plain`` is for sources nothing else uses."""

from __future__ import annotations

from typing import Protocol

from liferaft.source.device import SourceReader


class Provider(Protocol):
    name: str
    crash_consistent: bool
    """Its view is what a power cut would have left (a clone of a running VM's disk), not a
    frozen and flushed one: filesystems in it may need recovery (docs/design.md, "Consistency")."""

    def open(self, path: str, chunk_size: int) -> SourceReader:
        """A reader over a consistent view of path; raises SourceInUse / SourceUnreadable."""
        ...


def choose(path: str) -> str:
    """The provider for a source: freeze_trace when filesystems on it are mounted (a live
    system), plain otherwise."""
    from liferaft.source.usage import mounted_filesystems

    return "freeze_trace" if mounted_filesystems(path) else "plain"


def get(name: str) -> Provider:
    from liferaft.errors import UsageError
    from liferaft.source.providers.plain import PlainProvider
    from liferaft.source.providers.reflink import ReflinkProvider

    providers: dict[str, Provider] = {"plain": PlainProvider(), "reflink": ReflinkProvider()}
    try:
        return providers[name]
    except KeyError:
        known = sorted([*providers, "freeze_trace", "auto"])
        raise UsageError(f"unknown provider {name!r}: choose one of {known}") from None
