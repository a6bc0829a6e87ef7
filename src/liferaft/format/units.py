"""Sizes as people write them: '512K', '20M', '20MiB', '1G', '4096' (bytes; powers of 1024)."""

from __future__ import annotations

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
