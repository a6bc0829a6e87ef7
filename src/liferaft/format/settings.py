"""Repository settings: what every run against one repository must agree on and an
administrator may change (``liferaft settings``).

Canonical JSON, sealed; named ``settings``. A repository without the object uses the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from liferaft.format import canonical, check

SAFETY_MARGIN_S = 3600.0
LEASE_TERM_S = 600.0
LEASE_TERM_MIN_S = 2.0


@dataclass(frozen=True, slots=True)
class RepoSettings:
    safety_margin_s: float = SAFETY_MARGIN_S
    """GC deletes a pack only this long after a run condemned it, and condemns none younger."""
    lease_term_s: float = LEASE_TERM_S
    """A session not renewed for this long is dead to GC; a writer paused that long aborts."""
    lock_s: float = 0.0
    """Object Lock: every object a backup writes is retained this long (0: none)."""

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "liferaft": "settings",
                "safety_margin": self.safety_margin_s,
                "lease_term": self.lease_term_s,
                "lock": self.lock_s,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RepoSettings:
        obj = canonical.loads(data, "settings")
        check(obj.get("liferaft") == "settings", "settings: wrong kind")

        def number(name: str, default: float) -> float:
            value: Any = obj.get(name, default)
            check(isinstance(value, (int, float)) and not isinstance(value, bool), f"settings: {name} is not a number")
            return float(value)

        return cls(number("safety_margin", SAFETY_MARGIN_S), number("lease_term", LEASE_TERM_S), number("lock", 0.0)).checked()

    def checked(self) -> RepoSettings:
        check(self.safety_margin_s >= 0, "settings: the safety margin is negative")
        check(self.lease_term_s >= LEASE_TERM_MIN_S, f"settings: the lease term is below {LEASE_TERM_MIN_S:g} s")
        check(self.lock_s >= 0, "settings: the lock time is negative")
        return self

    def with_(self, **changes: float | None) -> RepoSettings:
        """A copy with the given fields changed (None: unchanged)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).checked()
