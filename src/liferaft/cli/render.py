"""Sizes both ways (printing and parsing), counts, the progress bar, tables and JSON."""

from __future__ import annotations

import json
import sys
import threading
import time
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


LOG_EVERY_S = 60.0
"""How often a progress line goes to a log (stderr not a terminal)."""


class BarProgress:
    """The ops Progress protocol on stderr: a rich bar (bytes, throughput, ETA) on a terminal; on a
    log (cron, a systemd unit) one plain line every LOG_EVERY_S, so that a backup running for
    hours shows where it is; nothing with --quiet. Never on stdout, so --json output stays clean.
    advance() may be called from any thread."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self._enabled = enabled
        self._console = console
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._log: tuple[str, int, float] | None = None
        """(what, total bytes, started) while a stage is logged."""
        self._done = 0
        self._logged = 0.0
        self._lock = threading.Lock()

    def start(self, what: str, total_bytes: int) -> None:
        if not self._enabled:
            return
        if not self._console.is_terminal:
            now = time.monotonic()
            self._log, self._done, self._logged = (what, total_bytes, now), 0, now
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
        elif self._log is not None:
            with self._lock:
                self._done += nbytes
                now = time.monotonic()
                if now - self._logged >= LOG_EVERY_S:
                    self._logged = now
                    self._console.print(self._line(now), highlight=False, markup=False)

    def _line(self, now: float) -> str:
        assert self._log is not None
        what, total, started = self._log
        rate = self._done / max(now - started, 1e-9)
        left = (total - self._done) / rate if rate else 0.0
        eta = f"{left / 60:.0f} min" if left >= 90 else f"{left:.0f} s"
        return f"{what}: {self._done / max(total, 1):.0%} ({size(self._done)} of {size(total)}), {size(rate)}/s, about {eta} left"

    def finish(self) -> None:
        self._log = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
