"""Providers: how a point-in-time view of a source is had. Each gives a SourceReader over a view
that does not change while it is read; ``plain`` is for sources nothing else uses."""

from __future__ import annotations

from typing import Protocol

from liferaft.source.device import SourceReader


class Provider(Protocol):
    name: str

    def open(self, path: str, chunk_size: int) -> SourceReader:
        """A reader over a consistent view of path; raises SourceInUse / SourceUnreadable."""
        ...


def get(name: str) -> Provider:
    from liferaft.errors import UsageError
    from liferaft.source.providers.plain import PlainProvider

    providers: dict[str, Provider] = {"plain": PlainProvider()}
    try:
        return providers[name]
    except KeyError:
        raise UsageError(f"unknown provider {name!r}: choose one of {sorted(providers)}") from None
