"""Object names in the store: the repository's folder plan (docs/design.md, "Objects")."""

from __future__ import annotations

CONFIG = "config"
KEYS = "keys"
PACKS = "packs"
INDEX = "index"
SNAPSHOTS = "snapshots"
SESSIONS = "sessions"
CONDEMNED = "condemned"
SETTINGS = "settings"
DAMAGED = "damaged"
DRILLS = "drills"
LOCKED = (PACKS, INDEX, SNAPSHOTS)
"""What Object Lock retains: what a backup writes that a snapshot needs (sessions, condemnation
records and settings are rewritten or removed in normal work)."""


def pack(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"{PACKS}/{h[:2]}/{h}"


def key(key_id: str) -> str:
    return f"{KEYS}/{key_id}"


def index(delta_id: str) -> str:
    return f"{INDEX}/{delta_id}"


def snapshot(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}"


def session(session_id: bytes) -> str:
    return f"{SESSIONS}/{session_id.hex()}"


def damaged(record_id: bytes) -> str:
    return f"{DAMAGED}/{record_id.hex()}"


def drill(snapshot_id: str, record_id: bytes) -> str:
    return f"{DRILLS}/{snapshot_id}.{record_id.hex()}"


def condemned(run_id: bytes) -> str:
    return f"{CONDEMNED}/{run_id.hex()}"


PROBE = "probe-"
"""Session-folder objects that are no session: written and deleted to learn something of the
store (its time, whether it deletes)."""


def probe(token: bytes) -> str:
    return f"{SESSIONS}/{PROBE}{token.hex()}"


def leaf(name: str) -> str:
    return name.rsplit("/", 1)[-1]
