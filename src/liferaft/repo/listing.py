"""Listing a repository folder as a reader that must not be stopped by what does not belong
there: a sync tool's conflicted copy, a desktop's ``.DS_Store``, an empty file left by a crash
of some other program. Such objects are left out, each named once in a warning."""

from __future__ import annotations

import re

from liferaft.repo import names
from liferaft.store.base import Store


def valid_names(store: Store, folder: str, pattern: re.Pattern[str], what: str, warnings: list[str] | None) -> list[str]:
    """The names below folder whose last part matches pattern and that are not empty, sorted."""
    kept = []
    for info in store.list(folder):
        leaf = names.leaf(info.name)
        if pattern.fullmatch(leaf) and info.size > 0:
            kept.append(info.name)
        elif warnings is not None:
            why = "empty" if pattern.fullmatch(leaf) else f"not a {what}"
            message = f"{info.name}: {why} (a stray or damaged file): left out"
            if message not in warnings:
                warnings.append(message)
    return sorted(kept)
