"""The progress protocol the operations report to (the CLI draws it; tests may record it)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, what: str, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, what: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        pass
