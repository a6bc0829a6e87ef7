"""Passwords as a new administrator meets them: on a terminal and off it, the default
repository's generated password file, new passwords asked twice and never empty, and the
password sources restic's and borg's users expect (a file, a command)."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.ops.repository import Defaults
from tests.conftest import PYTHON, Result, write_image

BOUND_S = 60.0
BOOT = """
import sys
from pathlib import Path
from liferaft.cli.main import main
from liferaft.ops.repository import Defaults
home = Path(sys.argv[1])
Defaults.for_user = classmethod(lambda cls: Defaults(home / "repository", home / "password"))
sys.exit(main(sys.argv[2:]))
"""


def on_terminal(home: Path, *args: str, answers: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run liferaft with a terminal for stdin, stdout and stderr (its controlling one, which
    getpass reads); each prompt that asks for a password gets the next answer. A prompt beyond
    the answers fails the test (after the bound) rather than hanging it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFERAFT_")}
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(PYTHON, [PYTHON, "-c", BOOT, str(home), *args], env)
    output, left, deadline, answered = b"", list(answers), time.monotonic() + BOUND_S, 0
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the child closed the terminal: it ended
                    break
                if not data:
                    break
                output += data
                line = output[answered:].rsplit(b"\n", 1)[-1].lower()
                if line.endswith(b": ") and (b"password" in line or b"again" in line):  # a prompt
                    assert left, f"asked for a password nobody expected: {output.decode(errors='replace')}"
                    os.write(fd, left.pop(0).encode() + b"\n")
                    answered = len(output)
            assert time.monotonic() < deadline, f"no end after {BOUND_S:.0f} s: {output.decode(errors='replace')}"
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace").replace("\r\n", "\n")


@pytest.fixture
def defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Defaults:
    d = Defaults(tmp_path / "home" / "repository", tmp_path / "home" / "password")
    monkeypatch.setattr(Defaults, "for_user", classmethod(lambda cls: d))
    return d


def test_on_a_terminal_the_default_repository_uses_its_generated_password(defaults: Defaults, tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    write_image(src, 2 << 20)
    home = defaults.repository.parent
    code, out = on_terminal(home, "backup", "-q", str(src))  # first use: no question at all
    assert code == 0, out
    assert "password" not in out.split("created the default repository")[0], out
    assert defaults.password_file.stat().st_mode & 0o777 == 0o600 and len(defaults.password_file.read_text().strip()) >= 24
    code, out = on_terminal(home, "snapshots")
    assert code == 0 and "1 snapshot" in out, out
    code, out = on_terminal(home, "snapshots", "--repo", str(defaults.repository))  # named: the same
    assert code == 0 and "1 snapshot" in out, out
    code, out = on_terminal(home, "init")
    assert code == 14, out


def test_a_new_password_is_asked_twice_and_never_empty(defaults: Defaults, tmp_path: Path) -> None:
    home, repo = defaults.repository.parent, tmp_path / "named"
    code, out = on_terminal(home, "init", "--repo", str(repo), answers=("",))
    assert code == 2 and "an empty password is refused" in out, out
    code, out = on_terminal(home, "init", "--repo", str(repo), answers=("one", "two"))
    assert code == 2 and "the passwords differ" in out, out
    assert not (repo / "config").exists()
    code, out = on_terminal(home, "init", "--repo", str(repo), answers=("chosen", "chosen"))
    assert code == 0 and "created repository" in out, out
    code, out = on_terminal(home, "snapshots", "--repo", str(repo), answers=("chosen",))
    assert code == 0 and "0 snapshots" in out, out


def test_a_missing_repository_is_named_before_any_password(cli: Callable[..., Result], tmp_path: Path) -> None:
    r = cli("snapshots", password=None, repo=tmp_path / "nothing-here")
    assert r.code == 10 and "is not a liferaft repository" in r.err, r.err


def test_password_file_and_command_from_the_environment(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import PASSWORD

    file = tmp_path / "pw"
    file.write_text(PASSWORD + "\n")
    monkeypatch.setenv("LIFERAFT_PASSWORD_FILE", str(file))
    assert cli("snapshots", password=None, repo=repo).code == 0
    monkeypatch.delenv("LIFERAFT_PASSWORD_FILE")
    monkeypatch.setenv("LIFERAFT_PASSWORD_COMMAND", f"cat {file}")
    assert cli("snapshots", password=None, repo=repo).code == 0
    monkeypatch.setenv("LIFERAFT_PASSWORD_COMMAND", "echo vault locked >&2; exit 3")
    failed = cli("snapshots", password=None, repo=repo)
    assert failed.code == 2 and "LIFERAFT_PASSWORD_COMMAND failed: vault locked" in failed.err, failed.err
    monkeypatch.setenv("LIFERAFT_PASSWORD_COMMAND", "echo wrong")
    assert cli("snapshots", password=None, repo=repo).code == 12


def test_an_empty_password_is_refused_for_a_new_repository(cli: Callable[..., Result], tmp_path: Path) -> None:
    r = cli("init", password="", repo=tmp_path / "r")
    assert r.code == 2 and "an empty password is refused" in r.err
    assert not (tmp_path / "r" / "config").exists()
