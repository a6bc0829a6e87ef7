"""Creating and opening repositories, the embedded default repository, and password keys."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liferaft.crypto.keys import KdfCost
from liferaft.errors import NoPassword, UsageError
from liferaft.format.config import CHUNK_SIZE_DEFAULT
from liferaft.format.settings import RepoSettings
from liferaft.repo.repository import Repository, default_cache_root
from liferaft.store.open import local_folder, open_store


@dataclass(frozen=True, slots=True)
class Defaults:
    """Where the embedded default repository and its generated password file live."""

    repository: Path
    password_file: Path

    @classmethod
    def for_user(cls) -> Defaults:
        if os.geteuid() == 0:
            base = Path("/var/lib/liferaft")
        else:
            base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "liferaft"
        return cls(base / "repository", base / "password")


def init_repository(
    location: str,
    password: bytes,
    chunk_size: int = CHUNK_SIZE_DEFAULT,
    compression_level: int = 3,
    cache_root: Path | None = None,
    cost: KdfCost | None = None,
    settings: RepoSettings | None = None,
) -> Repository:
    """settings: saved when they differ from the defaults; with Object Lock the bucket is made
    (or must already be) one that locks."""
    store = open_store(location)
    folder = local_folder(location)
    if folder is not None and not (folder / "config").exists():
        try:
            foreign = sorted(p.name for p in folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            foreign = []
        if foreign:  # a mistyped path (/home, a mount of other data): never mix a repository into it
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise UsageError(f"{folder} already holds other files ({shown}): give a new or empty folder")
    settings = settings or RepoSettings()
    store.prepare(lock=settings.lock_s > 0)
    repo = Repository.init(store, password, cache_root or default_cache_root(), chunk_size, compression_level, cost)
    if settings != RepoSettings():
        repo.save_settings(settings)
    return repo


def open_repository(location: str, password: bytes | Callable[[], bytes], cache_root: Path | None = None) -> Repository:
    """password: or a function that gives it, called once the location proved to hold a
    repository (so a wrong location is named before anyone is asked for a password)."""
    return Repository.open(open_store(location), password, cache_root or default_cache_root())


def open_default(
    defaults: Defaults, password: bytes | None, create: bool, cache_root: Path | None = None, cost: KdfCost | None = None,
    settings: RepoSettings | None = None,
) -> tuple[Repository, bool]:  # fmt: skip
    """The embedded default repository; (repository, created now). With ``create`` it is made on
    first use. With no password given, it uses a generated one kept in ``defaults.password_file``
    (mode 0600), so that the first backup runs unattended."""
    location = str(defaults.repository)
    exists = (defaults.repository / "config").exists()
    if password is None and defaults.password_file.exists():
        password = defaults.password_file.read_bytes().strip()
    if exists or not create:
        if password is None:
            raise NoPassword()
        return open_repository(location, password, cache_root), False
    if password is None:
        password = secrets.token_urlsafe(24).encode()
        defaults.password_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(defaults.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(password + b"\n")
    defaults.repository.mkdir(parents=True, exist_ok=True, mode=0o700)
    return init_repository(location, password, cache_root=cache_root, cost=cost, settings=settings), True
