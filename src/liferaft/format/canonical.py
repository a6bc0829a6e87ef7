"""Canonical JSON: the text form of the small records (config, keys, snapshots, sessions).

Sorted keys and no spaces, so that the same record always gives the same bytes (golden vectors
depend on it). Bytes fields travel as lowercase hex.
"""

from __future__ import annotations

import json
from typing import Any

from liferaft.format import FormatError, check


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def loads(data: bytes, kind: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{kind}: not JSON ({exc})") from None
    check(isinstance(obj, dict), f"{kind}: not a JSON object")
    return obj  # type: ignore[no-any-return]


def field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], record: str) -> Any:
    """obj[name], checked to be of kind (a bool is never accepted as a number)."""
    check(name in obj, f"{record}: missing field {name!r}")
    value = obj[name]
    ok = (isinstance(value, kind) and not isinstance(value, bool)) or kind is bool
    check(ok, f"{record}: field {name!r} has the wrong type")
    return value


def hexfield(obj: dict[str, Any], name: str, size: int | None, record: str) -> bytes:
    text = field(obj, name, str, record)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise FormatError(f"{record}: field {name!r} is not hex") from None
    check(size is None or len(value) == size, f"{record}: field {name!r} is not {size} bytes")
    return value
