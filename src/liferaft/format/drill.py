"""A drill's verdict: a snapshot booted under a throw-away overlay, and whether its console showed
the success signal in time (docs/design.md, "Boot and drills").

Canonical JSON, sealed; named ``drills/<snapshot id>.<record id hex>`` (a snapshot may be drilled
many times; the newest verdict is the one shown).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from liferaft.format import canonical, check


@dataclass(frozen=True, slots=True)
class DrillVerdict:
    snapshot_id: str
    time: str
    """When the drill ran (ISO 8601, UTC)."""
    passed: bool
    seconds: float
    """From the start of the guest to the signal (or to the end: the timeout, the guest's exit)."""
    expect: str
    """The regular expression waited for on the serial console."""
    why: str
    """'signal seen', 'timed out after 300 s', 'the guest stopped (exit 1)'."""
    firmware: str
    accel: str
    console_tail: str
    """The console's last lines."""

    def to_bytes(self) -> bytes:
        return canonical.dumps({"liferaft": "drill", **asdict(self)})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> DrillVerdict:
        obj = canonical.loads(data, "drill")
        check(obj.get("liferaft") == "drill", "drill: wrong kind")
        texts = ("snapshot_id", "time", "expect", "why", "firmware", "accel", "console_tail")
        text = {n: canonical.field(obj, n, str, "drill") for n in texts}
        passed = canonical.field(obj, "passed", bool, "drill")
        check(isinstance(passed, bool), "drill: field 'passed' has the wrong type")
        seconds = canonical.field(obj, "seconds", (int, float), "drill")
        return cls(passed=passed, seconds=float(seconds), **text)
