"""Use cases, one per module: backup, restore, verify, snapshots, repository (init and keys).

Each takes an open Repository (or what it needs to open one) and returns a result dataclass; the
CLI renders it. Progress is reported through the ``Progress`` protocol; nothing here prints.
"""
