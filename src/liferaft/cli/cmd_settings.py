"""``liferaft settings``: show or change what every run against the repository agrees on (the
GC safety margin, the lease term, Object Lock); ``init`` takes the same options."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context
from liferaft.errors import UsageError
from liferaft.format import FormatError
from liferaft.format.settings import LEASE_TERM_S, SAFETY_MARGIN_S, RepoSettings
from liferaft.ops.forget import parse_duration
from liferaft.repo import names


def duration_arg(text: str) -> timedelta:
    """An argparse type: '90s', '12h', '7d'."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _days(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: days cannot be negative")
    return value


def add_settings_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("repository settings")
    g.add_argument(
        "--safety-margin",
        type=duration_arg,
        metavar="DURATION",
        help=f"gc deletes a pack at least this long after it was condemned (default {render.duration(SAFETY_MARGIN_S)}): "
        "longer than any backup's pause between writing a chunk and committing",
    )
    g.add_argument(
        "--lease-term",
        type=duration_arg,
        metavar="DURATION",
        help=f"a run not heard from for this long is dead to gc, and aborts itself (default {render.duration(LEASE_TERM_S)})",
    )
    g.add_argument(
        "--lock-days",
        type=_days,
        metavar="N",
        help="S3 Object Lock: the server refuses to delete what backups write for N days (0: off; "
        "needs a bucket made with Object Lock, which init creates)",
    )


def settings_from(args: argparse.Namespace, base: RepoSettings) -> RepoSettings:
    def seconds(value: timedelta | None) -> float | None:
        return None if value is None else value.total_seconds()

    lock = None if args.lock_days is None else args.lock_days * 86400
    try:
        return base.with_(safety_margin_s=seconds(args.safety_margin), lease_term_s=seconds(args.lease_term), lock_s=lock)
    except FormatError as exc:
        raise UsageError(str(exc).removeprefix("settings: ")) from None


def changes_settings(args: argparse.Namespace) -> bool:
    return any(v is not None for v in (args.safety_margin, args.lease_term, args.lock_days))


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("settings", parents=[common], help="show or change the repository's settings")
    add_settings_options(p)
    p.add_argument("--json", action="store_true", help="print the settings as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        current = repo.settings()
        if changes_settings(args):
            new = settings_from(args, current)
            if new.lock_s:
                repo.store.set_lock(new.lock_s, names.LOCKED)  # refused here where the store cannot lock
            repo.save_settings(new)
            if new.lease_term_s < current.lease_term_s:
                ctx.note("runs already going keep the term they started with; gc waits for it")
            current = new
    if ctx.json:
        render.print_json(
            {"safety_margin": current.safety_margin_s, "lease_term": current.lease_term_s, "lock_days": current.lock_s / 86400}
        )
        return 0
    show_settings(ctx, current)
    return 0


def show_settings(ctx: Context, s: RepoSettings) -> None:
    lock = f"{s.lock_s / 86400:g} days (S3 Object Lock, compliance mode)" if s.lock_s else "off"
    render.table(
        ctx.out,
        ["setting", "value"],
        [
            ["safety margin", render.duration(s.safety_margin_s)],
            ["lease term", render.duration(s.lease_term_s)],
            ["object lock", lock],
        ],
    )
