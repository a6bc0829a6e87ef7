"""``liferaft copy --to DEST``: copy snapshots into another repository (offsite), storing only
what it lacks."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, add_selection, read_password
from liferaft.cli.render import BarProgress
from liferaft.errors import NoPassword
from liferaft.ops.copy import copy
from liferaft.ops.repository import open_repository


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("copy", parents=[common], help="copy snapshots into another repository (e.g. offsite, S3)")
    p.add_argument("--to", required=True, metavar="LOCATION", help="the destination repository (a folder or s3://bucket/prefix)")
    p.add_argument(
        "--to-password-file", metavar="FILE", help="the destination's password (else $LIFERAFT_TO_PASSWORD, else a prompt)"
    )
    add_selection(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def _to_password(args: argparse.Namespace) -> bytes:
    pw = read_password(args.to_password_file, "LIFERAFT_TO", "destination repository password: ")
    if pw is None:
        raise NoPassword("for the destination: use --to-password-file or LIFERAFT_TO_PASSWORD")
    return pw


def run(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as src, open_repository(args.to, _to_password(args)) as dst:
        r = copy(src, dst, ctx.selection, BarProgress(ctx.err, not args.quiet))
    if ctx.json:
        render.print_json(r.as_dict())
        return 0
    ctx.out.print(
        f"copied {render.count(len(r.copied), 'snapshot')} to {args.to} ({r.skipped} there already): "
        f"new {render.size(r.new_bytes)}, stored {render.size(r.stored_bytes)}; {r.seconds:.1f} s",
        highlight=False,
    )
    return 0
