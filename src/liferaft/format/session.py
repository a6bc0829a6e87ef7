"""A session record: a backup in progress announces itself and renews this lease.

Maintenance (GC) treats everything a live session may reference as in use. Canonical JSON,
sealed; named ``sessions/<session id hex>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from liferaft.format import canonical, check


@dataclass(frozen=True, slots=True)
class SessionRecord:
    hostname: str
    pid: int
    command: str
    started: float
    renewed: float
    """Unix time of the last renewal; a lease older than its term has lapsed."""

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "liferaft": "session",
                "hostname": self.hostname,
                "pid": self.pid,
                "command": self.command,
                "started": self.started,
                "renewed": self.renewed,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionRecord:
        obj = canonical.loads(data, "session")
        check(obj.get("liferaft") == "session", "session: wrong kind")
        return cls(
            hostname=canonical.field(obj, "hostname", str, "session"),
            pid=canonical.field(obj, "pid", int, "session"),
            command=canonical.field(obj, "command", str, "session"),
            started=float(canonical.field(obj, "started", (int, float), "session")),
            renewed=float(canonical.field(obj, "renewed", (int, float), "session")),
        )
