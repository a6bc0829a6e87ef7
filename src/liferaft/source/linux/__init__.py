"""What only Linux has: filesystem freezing (FIFREEZE) and its watchdog, block-layer tracing
(tracefs), the change tracker built on it (``tracking``, a ``source.changes.ChangeTracker``),
and the kernel's ioctls and syscalls (``kernel``).

``kernel`` imports anywhere (it imports fcntl inside each call, and a call where that is missing
fails as "not supported here"); the rest is loaded only by the providers that need it, by name
from the registry (``source.providers``). So ``import liferaft`` works on a platform without
them (tests/test_platform.py; import-linter holds cli, ops, repo, target and disk to it).
"""
