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
    term: float | None = None
    """The lease term the writer holds itself to (seconds); None: the default term."""

    def to_bytes(self) -> bytes:
        obj = {
            "liferaft": "session",
            "hostname": self.hostname,
            "pid": self.pid,
            "command": self.command,
            "started": self.started,
            "renewed": self.renewed,
        }
        if self.term is not None:
            obj["term"] = self.term
        return canonical.dumps(obj)

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
            term=float(canonical.field(obj, "term", (int, float), "session")) if "term" in obj else None,
        )
