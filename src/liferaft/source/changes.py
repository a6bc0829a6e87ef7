"""The change-tracker seam: what was written to a source since a mark, so that an incremental
backup reads only that. The Linux block trace implements it today (``linux.tracking``); QEMU's
dirty bitmaps or a Windows change journal can implement it next, behind the same three calls.

A tracker must vouch for every write or say it cannot: ``since`` answers byte ranges only when it
saw everything since the mark (no lost events, no restart), and None with the reason otherwise,
and the backup then reads and compares every used chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Mark:
    """A point in a tracker's history: which tracker (a restart is a new one) and its epoch."""

    tracker: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Since:
    """Answer to 'written since a mark': byte ranges, or None with the reason why not known."""

    ranges: list[tuple[int, int]] | None
    why: str = ""


class ChangeTracker(Protocol):
    def mark(self, device: str) -> Mark | None:
        """Start a new epoch for device; None when no tracker follows it."""
        ...

    def since(self, device: str, mark: Mark) -> Since:
        """What was written to device since mark."""
        ...

    def hint(self, device: str) -> str:
        """How to have this tracker follow device, for the note when none does."""
        ...
