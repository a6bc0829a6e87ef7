"""What a backup asks of its provider, with the defaults: the options of live backups (the
freeze window's bound, hooks, the trace's buffer, passes) and the notes a provider adds for the
user. Portable: the CLI and the library build these without loading any Linux module."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_FREEZE_S = 10.0
"""The watchdog's bound on a freeze, by default."""
BUFFER_KB = 8192
"""The write trace's ring buffer per CPU, by default: room for bursts between two drains."""


@dataclass
class LiveOptions:
    max_freeze: float = MAX_FREEZE_S
    """The watchdog's bound on the freeze window, in seconds."""
    pre_freeze: str | None = None
    post_thaw: str | None = None
    trace_buffer_kb: int = BUFFER_KB
    """Ring buffer per CPU."""
    max_passes: int = 8
    """Live re-copy passes before the final frozen one."""
    frozen_memory: int = 256 << 20
    """At most this many bytes of dirty chunks are copied into memory during the freeze."""
    rescue: bool = False
    """Read around unreadable sectors (zeros stored there, the lost ranges recorded)."""
    notes: list[str] = field(default_factory=list)
