"""liferaft: live disk-image backup and disaster recovery.

The public library API: open or create a repository, back up a source, restore and verify
snapshots. The ``liferaft`` command is built on exactly these.
"""

from liferaft.errors import LiferaftError
from liferaft.ops.backup import BackupResult, backup
from liferaft.ops.repository import init_repository, open_repository
from liferaft.ops.restore import RestoreResult, restore
from liferaft.ops.snapshots import list_snapshots, show
from liferaft.ops.verify import VerifyResult, verify

__version__ = "0.1.0"

__all__ = [
    "BackupResult",
    "LiferaftError",
    "RestoreResult",
    "VerifyResult",
    "__version__",
    "backup",
    "init_repository",
    "list_snapshots",
    "open_repository",
    "restore",
    "show",
    "verify",
]
