"""``liferaft``: the parser, and the one place errors become exit codes (README, "Exit codes")."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType

from rich.console import Console

from liferaft import __version__
from liferaft.cli import (
    cmd_backup,
    cmd_boot,
    cmd_bundle,
    cmd_config,
    cmd_copy,
    cmd_daemon,
    cmd_forget,
    cmd_gc,
    cmd_init,
    cmd_key,
    cmd_mount,
    cmd_repair,
    cmd_restore,
    cmd_settings,
    cmd_show,
    cmd_snapshots,
    cmd_status,
    cmd_track,
    cmd_verify,
)
from liferaft.cli.context import Context
from liferaft.cli.memory import tune_allocator
from liferaft.errors import Interrupted, LiferaftError
from liferaft.ops.repository import Defaults

COMMANDS = [
    cmd_init,
    cmd_backup,
    cmd_snapshots,
    cmd_show,
    cmd_restore,
    cmd_mount,
    cmd_boot,
    cmd_verify,
    cmd_copy,
    cmd_forget,
    cmd_gc,
    cmd_repair,
    cmd_settings,
    cmd_key,
    cmd_track,
    cmd_daemon,
    cmd_status,
    cmd_config,
    cmd_bundle,
]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--repo",
        "-r",
        metavar="LOCATION",
        help="repository (a folder, or s3://bucket/prefix); default: $LIFERAFT_REPO, else the embedded default repository",
    )
    common.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from FILE (else $LIFERAFT_PASSWORD_FILE, the output of "
        "$LIFERAFT_PASSWORD_COMMAND, $LIFERAFT_PASSWORD; for the default repository its generated "
        "password file; else a prompt)",
    )
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser = argparse.ArgumentParser(prog="liferaft", description="Live disk-image backup and disaster recovery.")
    parser.add_argument("--version", action="version", version=f"liferaft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS:
        cmd.add(sub, common)
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # on a pipe or file, do not cut tables and lines at 80 columns
    out = Console(width=None if sys.stdout.isatty() else 200, soft_wrap=True)  # a line is never broken for width
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 200, soft_wrap=True)  # messages stay one line
    ctx = Context(args, out, err, Defaults.for_user())
    # SIGTERM (systemd stop) and SIGHUP (a closed ssh session) end a run as Ctrl-C does: cleanly,
    # nothing committed half-way, no trace left; a hang-up that nohup ignores stays ignored
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, _terminate)
    try:
        return int(args.run(args, ctx))
    except KeyboardInterrupt:
        err.print(f"liferaft: {Interrupted().message}", markup=False, highlight=False)
        return Interrupted.exit_code
    except LiferaftError as exc:
        err.print(f"liferaft: {exc.message}", markup=False, highlight=False)
        return exc.exit_code
    except Exception as exc:  # a bug: its traceback for the report, and exit 2 (never 1, which monitors read as a warning)
        traceback.print_exc()
        err.print(
            f"liferaft: unexpected error ({type(exc).__name__}: {exc}); please report it with the traceback above",
            markup=False,
            highlight=False,
        )
        return 2
    finally:
        ctx.warn_left_out()
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def entry() -> None:
    tune_allocator()
    sys.exit(main())
