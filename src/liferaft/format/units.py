"""Sizes and durations as people write them: '512K', '20M', '20MiB', '1G', '4096' (bytes; powers
of 1024); '90s', '15m', '15min', '1h 30min', '1y2d' (a year: 365 days)."""

from __future__ import annotations

import re

UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """The size in bytes; ValueError when it is not a size above zero."""
    t = text.strip().upper().removesuffix("/S").removesuffix("IB").removesuffix("B")
    try:
        value = int(float(t[:-1]) * UNITS[t[-1]]) if t and t[-1] in UNITS else int(t)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"not a size: {text!r} (a size above zero, e.g. 1M, 512K)")
    return value


SECONDS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "y": 365 * 86400, "year": 365 * 86400, "years": 365 * 86400,
}  # fmt: skip
_SPAN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


def parse_duration(text: str, bare_seconds: bool = False) -> float:
    """Seconds (zero or more); ValueError when it is not a duration. bare_seconds: a number
    without a unit counts as seconds (systemd's rule, for the daemon's config), else it is refused."""
    pos, total, s = 0, 0.0, text.strip().lower()
    while pos < len(s):
        m = _SPAN.match(s, pos)
        unit = m.group(2) if m else ""
        if not m or m.end() == pos or (unit and unit not in SECONDS) or (not unit and not bare_seconds):
            break
        total += float(m.group(1)) * SECONDS[unit or "s"]
        pos = m.end()
    if not s or pos < len(s):
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 15min, 12h, 7d, 2w, 1y)")
    return total
