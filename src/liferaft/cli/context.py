"""What every command needs: the password, the repository location, the console."""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from liferaft.errors import NoPassword, UsageError
from liferaft.format import SnapshotId
from liferaft.ops.repository import Defaults, open_default, open_repository
from liferaft.ops.snapshots import Selection, select
from liferaft.repo.repository import Repository
from liferaft.store.open import local_folder


def add_selection(p: argparse.ArgumentParser) -> None:
    """--source and --host: which snapshots 'latest' (or a listing) means."""
    p.add_argument(
        "--source", metavar="PATH", help="only snapshots of this device or image file ('latest' needs it when there are several)"
    )
    p.add_argument("--host", metavar="NAME", help="only snapshots taken on this host")


def given_password(file: str | None, prefix: str) -> bytes | None:
    """A password given without asking: from file, else ``{prefix}_PASSWORD_FILE``, else
    ``{prefix}_PASSWORD_COMMAND`` (its output, run by the shell), else ``{prefix}_PASSWORD``."""
    file = file or os.environ.get(f"{prefix}_PASSWORD_FILE") or None
    if file:
        try:
            return Path(file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read the password file {file}: {exc.strerror}") from None
    command = os.environ.get(f"{prefix}_PASSWORD_COMMAND")
    if command:
        done = subprocess.run(command, shell=True, capture_output=True)
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise UsageError(f"{prefix}_PASSWORD_COMMAND failed: {why[0]}")
        return done.stdout.rstrip(b"\r\n")
    if f"{prefix}_PASSWORD" in os.environ:
        return os.environ[f"{prefix}_PASSWORD"].encode()
    return None


def ask_password(prompt: str, new: bool = False) -> bytes | None:
    """A prompt on a terminal (None elsewhere); a new password is asked twice and may not be empty."""
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass(prompt)
    if new:
        if not first:
            raise UsageError("an empty password is refused: choose one (or give none, for the default repository)")
        if getpass.getpass("the same again: ") != first:
            raise UsageError("the passwords differ")
    return first.encode()


def read_password(file: str | None, prefix: str, prompt: str, new: bool = False) -> bytes | None:
    """given_password, else ask_password; None if neither gives one. A new one may not be empty."""
    pw = given_password(file, prefix)
    if pw is None:
        return ask_password(prompt, new)
    if new and not pw:
        raise UsageError(f"an empty password is refused (the one given by --password-file or {prefix}_PASSWORD*)")
    return pw


@dataclass
class Context:
    args: argparse.Namespace
    out: Console
    err: Console
    defaults: Defaults
    opened: list[Repository] = field(default_factory=list)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def location(self) -> str | None:
        return self.args.repo or os.environ.get("LIFERAFT_REPO") or None

    @property
    def selection(self) -> Selection:
        return Selection(getattr(self.args, "source", None), getattr(self.args, "host", None))

    def warn_left_out(self) -> None:
        """Warn about what the repositories opened left out (each thing once)."""
        seen: set[str] = set()
        for repo in self.opened:
            for message in repo.warnings:
                if message not in seen:
                    seen.add(message)
                    self.warn(message)

    def note(self, message: str) -> None:
        """A note on stderr, as plain text (paths may hold [brackets], which rich would read)."""
        self.err.print(f"note: {message}", highlight=False, markup=False)

    def warn(self, message: str) -> None:
        """A warning on stderr, as plain text."""
        self.err.print(f"warning: {message}", highlight=False, markup=False)

    def snapshot(self, repo: Repository, name: str) -> SnapshotId:
        """The snapshot id that name ('latest' or an id prefix) stands for, under --source/--host.
        Damaged snapshots are left out of 'latest', each with a warning."""
        damaged: list[str] = []
        sid = select(repo, name, self.selection, damaged)
        for message in damaged:
            self.warn(f"{message}; it was left out of 'latest'")
        return sid

    @property
    def default_named(self) -> bool:
        """Whether the repository meant is the embedded default (no --repo, or --repo naming it)."""
        location = self.location
        return (
            location is None or (local_folder(location) or Path("/nonexistent")).absolute() == self.defaults.repository.absolute()
        )

    def password(self, prompt: str = "repository password: ", new: bool = False) -> bytes | None:
        """From --password-file, LIFERAFT_PASSWORD_FILE / _COMMAND / LIFERAFT_PASSWORD, or a
        prompt on a terminal; None if none."""
        return read_password(self.args.password_file, "LIFERAFT", prompt, new)

    def require_password(self, prompt: str = "repository password: ", new: bool = False) -> bytes:
        pw = self.password(prompt, new)
        if pw is None:
            raise NoPassword()
        return pw

    def open(self, create_default: bool = False) -> Repository:
        """The repository named by --repo / LIFERAFT_REPO, else the embedded default. Where the
        location holds no repository, that is said before any password is asked for. What it
        leaves out on the way (stray objects, unreadable deltas) is warned about at the end."""
        repo = self._open(create_default)
        self.opened.append(repo)
        return repo

    def _open(self, create_default: bool) -> Repository:
        if not self.default_named:
            assert self.location is not None
            return open_repository(self.location, self.require_password)
        given = given_password(self.args.password_file, "LIFERAFT")
        if given is None and not self.defaults.password_file.exists() and (self.defaults.repository / "config").exists():
            given = ask_password(f"password of {self.defaults.repository} (its password file is gone): ")
        repo, created = open_default(self.defaults, given, create_default)
        if created:
            self.announce_default(given is not None)
        return repo

    def announce_default(self, given: bool) -> None:
        where = "the password you gave" if given else f"a new password, kept in {self.defaults.password_file}"
        self.err.print(
            f"created the default repository at {self.defaults.repository}, opened by {where}: "
            "keep a copy of that password elsewhere, without it these backups cannot be restored",
            highlight=False,
            markup=False,
        )
