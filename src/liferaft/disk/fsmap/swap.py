"""Linux swap: only the header page is kept; the rest holds nothing worth restoring."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from liferaft.disk import ReadAt
from liferaft.disk.fsmap import FsInfo

PAGE = 4096


class SwapMap:
    def __init__(self, info: FsInfo) -> None:
        self.info = info
        self.recovery = self.note = ""

    def free_extents(self, settled: bool = False) -> Iterator[tuple[int, int]]:
        if self.info.size > PAGE:
            yield PAGE, self.info.size - PAGE


def probe(read_at: ReadAt, size: int) -> SwapMap | None:
    page = read_at(0, PAGE)
    if len(page) < PAGE or page[PAGE - 10 :] != b"SWAPSPACE2" or size < PAGE:
        return None
    label = page[1024 + 28 : 1024 + 44].split(b"\0", 1)[0].decode("utf-8", "replace")
    return SwapMap(FsInfo("swap", label, str(uuid.UUID(bytes=page[1024 + 12 : 1024 + 28])), PAGE, size))
