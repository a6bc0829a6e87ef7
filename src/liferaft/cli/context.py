"""What every command needs: the password, the repository location, the console."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from liferaft.errors import NoPassword, UsageError
from liferaft.format import SnapshotId
from liferaft.ops.repository import Defaults, open_default, open_repository
from liferaft.ops.snapshots import Selection, select
from liferaft.repo.repository import Repository


def add_selection(p: argparse.ArgumentParser) -> None:
    """--source and --host: which snapshots 'latest' (or a listing) means."""
    p.add_argument(
        "--source", metavar="PATH", help="only snapshots of this device or image file ('latest' needs it when there are several)"
    )
    p.add_argument("--host", metavar="NAME", help="only snapshots taken on this host")


def read_password(file: str | None, env: str, prompt: str, confirm: bool = False) -> bytes | None:
    """A password from file, else the environment variable env, else a prompt on a terminal
    (twice with confirm); None if none of them gives one."""
    if file:
        try:
            return Path(file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read the password file {file}: {exc.strerror}") from None
    if env in os.environ:
        return os.environ[env].encode()
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != first:
            raise UsageError("the passwords differ")
        return first.encode()
    return None


@dataclass
class Context:
    args: argparse.Namespace
    out: Console
    err: Console
    defaults: Defaults

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def location(self) -> str | None:
        return self.args.repo or os.environ.get("LIFERAFT_REPO") or None

    @property
    def selection(self) -> Selection:
        return Selection(getattr(self.args, "source", None), getattr(self.args, "host", None))

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

    def password(self, prompt: str = "repository password: ", confirm: bool = False) -> bytes | None:
        """From --password-file, LIFERAFT_PASSWORD, or a prompt on a terminal; None if none."""
        return read_password(self.args.password_file, "LIFERAFT_PASSWORD", prompt, confirm)

    def require_password(self, prompt: str = "repository password: ", confirm: bool = False) -> bytes:
        pw = self.password(prompt, confirm)
        if pw is None:
            raise NoPassword()
        return pw

    def open(self, create_default: bool = False) -> Repository:
        """The repository named by --repo / LIFERAFT_REPO, else the embedded default."""
        if self.location:
            return open_repository(self.location, self.require_password())
        given = self.password()
        repo, created = open_default(self.defaults, given, create_default)
        if created:
            where = "the password you gave" if given is not None else f"a new password, kept in {self.defaults.password_file}"
            self.err.print(
                f"created the default repository at {self.defaults.repository}, opened by {where}: "
                "keep a copy of that password elsewhere, without it these backups cannot be restored",
                highlight=False,
            )
        return repo
