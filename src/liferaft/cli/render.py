"""Sizes both ways (printing and parsing), counts, the progress bar, tables and JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from liferaft.errors import UsageError


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 chunk', '2 chunks'."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        value = int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except ValueError:
        value = 0
    if value <= 0:
        raise UsageError(f"not a size: {text!r} (a size above zero, e.g. 1M, 512K)")
    return value


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a number above zero (argparse turns the ValueError into a usage error)."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {kind.__name__}"  # what argparse names in its message
    return parse


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def table(console: Console, columns: list[str], rows: list[list[str]], title: str | None = None) -> None:
    t = Table(title=title, box=None, header_style="bold")
    for c in columns:
        t.add_column(c, justify="right" if c in {"size", "new", "stored"} else "left")
    for r in rows:
        t.add_row(*r)
    console.print(t)


class BarProgress:
    """The ops Progress protocol drawn as a rich bar (bytes, throughput, ETA) on stderr; silent when
    stderr is not a terminal or with --quiet, so logs and --json output stay clean."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self._enabled = enabled and console.is_terminal
        self._console = console
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, what: str, total_bytes: int) -> None:
        if not self._enabled:
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(what, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, nbytes)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
