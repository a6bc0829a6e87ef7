"""The repository: chunks sealed into packs, the index, snapshots, sessions and their leases.

It knows nothing of disks: it stores and returns chunks by id and snapshots by id, through a
``store``. The commit order is fixed here: packs (each read back and checked), then the session's
index delta, then the snapshot, the only commit point.
"""
