"""The plain provider: the source is not in use (an unmounted device, an image file nothing has
attached), so reading it straight through is consistent. A source in use is refused, never read
half-changed."""

from __future__ import annotations

from liferaft.errors import SourceInUse
from liferaft.source.device import SourceReader
from liferaft.source.options import LiveOptions
from liferaft.source.providers import StaticView
from liferaft.source.usage import in_use


class PlainProvider:
    name = "plain"

    def open(self, path: str, chunk_size: int, options: LiveOptions) -> StaticView:
        """Not crash-consistent: nothing uses the source. A filesystem on it that needs recovery
        (a dead machine's disk) makes the image crash-consistent all the same (the plan says so)."""
        holder = in_use(path)
        if holder is not None:
            raise SourceInUse(path=path, holder=holder)
        return StaticView(SourceReader(path, chunk_size, rescue=options.rescue), crash_consistent=False)
