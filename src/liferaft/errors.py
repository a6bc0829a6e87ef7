"""The one exception tree of liferaft.

Each class's docstring is its message template (``str.format`` fields filled from the keyword
arguments given when raising) and ``exit_code`` is what the ``liferaft`` command exits with. Codes
are unique per class (a test keeps them so) and documented in README.md:
0 ok, 1 warning, 2 any other error, 3-99 specific errors, 130 interrupted.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LiferaftError(Exception):
    """{detail}"""

    exit_code: ClassVar[int] = 2

    def __init__(self, detail: str = "", **fields: Any) -> None:
        self.fields = {"detail": detail, **fields}
        super().__init__(self.message)

    @property
    def message(self) -> str:
        template = (type(self).__doc__ or "{detail}").strip()
        try:
            text = template.format(**self.fields)
        except (KeyError, IndexError):
            text = f"{template} {self.fields}"
        detail = self.fields.get("detail")
        if detail and "{detail}" not in template:
            text = f"{text} ({detail})"
        return text


# --- repository ---------------------------------------------------------------------------------
class RepositoryNotFound(LiferaftError):
    """{location} is not a liferaft repository: create one with 'liferaft init' or check --repo / LIFERAFT_REPO"""

    exit_code = 10


class RepositoryNewerFormat(LiferaftError):
    """the repository at {location} uses format {found} (features {features}); this liferaft reads format {supported}: upgrade liferaft"""

    exit_code = 11


class WrongPassword(LiferaftError):
    """wrong password: no key of the repository at {location} opens with it; check LIFERAFT_PASSWORD or --password-file"""

    exit_code = 12


class NoPassword(LiferaftError):
    """no password given: set LIFERAFT_PASSWORD, pass --password-file FILE, or run on a terminal to be asked"""

    exit_code = 13


class RepositoryExists(LiferaftError):
    """a repository already exists at {location}: use it, or choose another --repo"""

    exit_code = 14


class SnapshotNotFound(LiferaftError):
    """no snapshot matches '{name}': list them with 'liferaft snapshots'"""

    exit_code = 15


class AmbiguousSnapshot(LiferaftError):
    """'{name}' matches {count} snapshots: give more characters of the id"""

    exit_code = 16


class AmbiguousLatest(LiferaftError):
    """'latest' is ambiguous: the repository holds snapshots of {sources}; choose one with --source (and --host), or name a snapshot by its id"""

    exit_code = 19


class CorruptRepository(LiferaftError):
    """the repository is damaged: {detail}; run 'liferaft verify --read-data' to see everything affected"""

    exit_code = 17


class KeyManagementError(LiferaftError):
    """{detail}"""

    exit_code = 18


class StoreError(LiferaftError):
    """the repository's storage failed: {detail}"""

    exit_code = 21


class RepositoryFull(StoreError):
    """the repository's storage is full ({detail}): nothing of this run was committed and the repository is consistent; free space or use another repository, then run again"""

    exit_code = 20


class ObjectMissing(StoreError):
    """the repository object {name} is missing"""

    exit_code = 22


class DeleteRefused(StoreError):
    """the repository's storage refused to delete {name} (append-only credentials, or an object lock)"""

    exit_code = 28


class StoreTransient(StoreError):
    """the repository's storage did not answer: {detail}; try again"""

    exit_code = 23


class LeaseLost(LiferaftError):
    """this run's session lease lapsed ({detail}): maintenance may have taken the session for dead, so nothing was committed; the repository is consistent, run again"""

    exit_code = 25


class LeaseHeld(LiferaftError):
    """{what} holds the repository's maintenance lease (renewed {age:.0f} s ago): wait for it to finish, or, if it is dead, for its lease to lapse ({term:.0f} s)"""

    exit_code = 26


class AppendOnly(LiferaftError):
    """{what} needs to delete, and this repository's storage refuses deletes (append-only credentials, or an object lock): nothing was changed; run {what} with credentials that may delete (backups work as they are)"""

    exit_code = 29


class MaintenanceAborted(LiferaftError):
    """gc stopped: {detail}"""

    exit_code = 27


class CacheUnwritable(LiferaftError):
    """cannot write the local index cache in {path} nor in a temporary folder ({detail}): free space there, or point XDG_CACHE_HOME (or TMPDIR) at a writable folder"""

    exit_code = 24


# --- source -------------------------------------------------------------------------------------
class SourceUnreadable(LiferaftError):
    """cannot read the source {path}: {detail}"""

    exit_code = 30


class SourceInUse(LiferaftError):
    """{path} is in use ({holder}): a plain copy of a source in use is not consistent; back it up live (--provider freeze_trace, the default for mounted sources) or unmount it first"""

    exit_code = 31


# --- target -------------------------------------------------------------------------------------
class TargetError(LiferaftError):
    """cannot write the target {path}: {detail}"""

    exit_code = 40


class TargetTooSmall(LiferaftError):
    """the target {path} holds {target_size} bytes but the image needs {image_size}: use a target of at least {image_size} bytes"""

    exit_code = 41


class TargetLarger(LiferaftError):
    """the target {path} ({target_size} bytes) is larger than the image ({image_size} bytes): pass --force to restore into its start anyway"""

    exit_code = 42


class TargetInUse(LiferaftError):
    """the target {path} is in use ({detail}): unmount it and stop what holds it first"""

    exit_code = 43


class TargetExists(LiferaftError):
    """the target file {path} exists: pass --force to overwrite it"""

    exit_code = 44


class ResizeFailed(LiferaftError):
    """resizing the filesystem failed: {detail}"""

    exit_code = 45


# --- live consistency ---------------------------------------------------------------------------
class FreezeFailed(LiferaftError):
    """could not freeze {detail}: the system was left running and no snapshot was saved; check that the path is a mounted filesystem that supports freezing"""

    exit_code = 60


class FreezeBusy(FreezeFailed):
    """{mountpoint} was frozen by another program (another backup, or 'fsfreeze -f') and stayed frozen for {waited} s: the system was left running and no snapshot was saved; run again once it is thawed ('fsfreeze -u {mountpoint}' thaws it)"""

    exit_code = 64


class FreezeExpired(LiferaftError):
    """the freeze lasted longer than {bound} s, so the watchdog thawed the filesystems: the copy taken in that window is not trusted; run again (or raise --max-freeze)"""

    exit_code = 61


class SourceTooBusy(LiferaftError):
    """the source changed faster than it could be copied ({detail}): the system was left running and no snapshot was saved; back up at a quieter time, or raise --max-passes"""

    exit_code = 62


class HookFailed(LiferaftError):
    """the {which} hook failed ({detail}): the system was left running and no snapshot was saved; fix the command or drop the option"""

    exit_code = 63


# --- checks -------------------------------------------------------------------------------------
class VerifyFailed(LiferaftError):
    """verification failed: {detail}"""

    exit_code = 50


class VerifyHealed(LiferaftError):
    """damage was found or recorded, but every snapshot has all its data ({detail}); the storage may be failing: check it"""

    exit_code = 52


class FsckFailed(LiferaftError):
    """the restored partition {partition} ({fs}) is not clean: {detail}; the target holds the image as it was backed up (check the source's filesystem, or restore an older snapshot)"""

    exit_code = 51


class MountFailed(LiferaftError):
    """mount: {detail}"""

    exit_code = 70


class FileNotInSnapshot(LiferaftError):
    """not in the snapshot: {detail}"""

    exit_code = 73


class BootFailed(LiferaftError):
    """boot: {detail}"""

    exit_code = 71


class DrillFailed(LiferaftError):
    """drill failed: {detail}"""

    exit_code = 72


# --- unattended operation -----------------------------------------------------------------------
class ConfigInvalid(LiferaftError):
    """{path}:{line}: {reason}"""

    exit_code = 80


class DaemonRunning(LiferaftError):
    """another liferaft daemon already runs for {path} (pid {pid}): stop it first, or reload it with SIGHUP"""

    exit_code = 81


class JobsUnhealthy(LiferaftError):
    """{detail}"""

    exit_code = 82


class Interrupted(LiferaftError):
    """interrupted: nothing of this run was committed and the repository is consistent; run the command again"""

    exit_code = 130


class UsageError(LiferaftError):
    """{detail}"""

    exit_code = 2
