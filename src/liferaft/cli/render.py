"""Sizes both ways (printing and parsing), counts, the progress bar, tables and JSON."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from liferaft.errors import UsageError
from liferaft.format import units


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def duration(seconds: float) -> str:
    """'45s', '90m', '1h', '1d 12h': the largest whole units, at most two."""
    left, parts = round(seconds), list[str]()
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= length or (unit == "s" and not parts):
            parts.append(f"{left // length}{unit}")
            left %= length
        if len(parts) == 2:
            break
    return " ".join(parts)


def moment(ts: float) -> str:
    """A Unix time as '2026-12-02 04:30 UTC'."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 chunk', '2 chunks'."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def parse_size(text: str) -> int:
    try:
        return units.parse_size(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a number above zero (argparse turns the ValueError into a usage error)."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {kind.__name__}"  # what argparse names in its message
    return parse


def files_hit(hits: Sequence[Any], most: int = 20) -> list[str]:
    """One line per partition of ``ops.mount.PartitionFiles``: the files there (the first most of
    them; --json has all), or why the filesystem cannot say."""
    lines = []
    for h in hits:
        if h.files is None:
            lines.append(f"{h.partition}: which files, unknown ({h.note})")
            continue
        shown = ", ".join(h.files[:most]) + (f" and {len(h.files) - most} more" if len(h.files) > most else "")
        other = f"; {size(h.other_bytes)} in no file (filesystem metadata or free space)" if h.other_bytes else ""
        note = f" ({h.note})" if h.note else ""
        lines.append(f"{h.partition}: {count(len(h.files), 'file')}: {shown or '-'}{other}{note}")
    return lines


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True, slots=True)
class Column:
    """A table column. drop: columns are left out to fit the width, highest first (0: never);
    wrap: its cells wrap onto more lines rather than widen the table (never cut)."""

    name: str
    right: bool = False
    drop: int = 0
    wrap: bool = False


def width_limit(console: Console) -> int | None:
    """The width a table must fit: the terminal's, or $COLUMNS; none for a pipe or a file."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return console.size.width if console.is_terminal else None


def table(console: Console, columns: Sequence[Column | str], rows: list[list[str]]) -> None:
    """Plain aligned text (fast for thousands of rows). To fit the width, optional columns are
    left out and wrapping ones wrap; no cell is ever cut, so what a user must type stays whole."""
    cols = [c if isinstance(c, Column) else Column(c, right=c in {"size", "new", "stored", "used"}) for c in columns]
    keep = list(range(len(cols)))
    widths = [max([len(c.name), *(len(r[i]) for r in rows)]) for i, c in enumerate(cols)]
    limit = width_limit(console)

    def total() -> int:
        return sum(widths[i] for i in keep) + 2 * (len(keep) - 1)

    wraps = [i for i in keep if cols[i].wrap]

    def shrink(least: int) -> None:
        """Narrow the wrapping columns, down to least each, until the table fits."""
        for i in wraps:
            if limit is not None and total() > limit:
                widths[i] = max(len(cols[i].name), least, widths[i] - (total() - limit), min(widths[i], least))

    dropped = []
    for least in (WRAP_AT_LEAST, WRAP_AT_MOST):
        shrink(least)
        while limit is not None and total() > limit and any(cols[i].drop for i in keep):
            worst = max((i for i in keep if cols[i].drop), key=lambda i: cols[i].drop)
            keep.remove(worst)
            dropped.append(cols[worst].name)
            for i in wraps:  # room again: as wide as it fits
                widths[i] = max([len(cols[i].name), *(len(r[i]) for r in rows)])
            shrink(least)
    lines = []
    for cells in [[c.name for c in cols], *rows]:
        parts = {i: _wrap(cells[i], widths[i]) for i in keep}
        for n in range(max(len(p) for p in parts.values())):
            line = []
            for i in keep:
                text = parts[i][n] if n < len(parts[i]) else ""
                line.append(text.rjust(widths[i]) if cols[i].right else text.ljust(widths[i]))
            lines.append("  ".join(line).rstrip())
    if dropped:
        lines.append(f"(left out for {limit} columns: {', '.join(reversed(dropped))}; --json has everything)")
    console.file.write("\n".join(lines) + "\n")


WRAP_AT_LEAST = 28
"""A wrapping column narrows to this before optional columns are left out..."""
WRAP_AT_MOST = 12
"""... and to this after."""


def _wrap(text: str, width: int) -> list[str]:
    """text in lines of at most width, broken after a '/' where one is near the end of a line."""
    lines = []
    while len(text) > width:
        cut = text.rfind("/", width // 2, width) + 1 or width
        lines.append(text[:cut])
        text = text[cut:]
    return [*lines, text]


def short_ids(ids: list[str], least: int = 8) -> dict[str, str]:
    """Each id's shortest prefix of at least ``least`` characters that no other id shares: what
    tables show, and what a user may type."""
    ordered = sorted(ids)
    short = {}
    for n, sid in enumerate(ordered):
        need = least
        for other in ordered[max(0, n - 1) : n] + ordered[n + 1 : n + 2]:
            common = next((k for k, (a, b) in enumerate(zip(sid, other, strict=False)) if a != b), len(sid))
            need = max(need, common + 1)
        short[sid] = sid[:need]
    return short


LOG_EVERY_S = 60.0
"""How often a progress line goes to a log (stderr not a terminal)."""


class _Done(ProgressColumn):
    """'1.2 GiB of 4.0 GiB', in the units of every summary (``size``)."""

    def render(self, task: Task) -> Text:
        done = size(task.completed)
        return Text(f"{done} of {size(task.total)}" if task.total else done, style="progress.download")


class _Rate(ProgressColumn):
    """'212.4 MiB/s', in the same units."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{size(speed)}/s" if speed else "", style="progress.data.speed")


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
            _Done(),
            _Rate(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(what, total=total_bytes or None)

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
        if not total:  # a stream: how much, how fast
            return f"{what}: {size(self._done)}, {size(rate)}/s"
        return f"{what}: {self._done / max(total, 1):.0%} ({size(self._done)} of {size(total)}), {size(rate)}/s, about {eta} left"

    def finish(self) -> None:
        self._log = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
