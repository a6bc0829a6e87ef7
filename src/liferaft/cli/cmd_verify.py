"""``liferaft verify [SNAPSHOT]``: check the repository's structure, or all its data."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, add_selection
from liferaft.cli.render import BarProgress
from liferaft.errors import UsageError, VerifyFailed
from liferaft.ops.verify import verify


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify", parents=[common], help="check snapshots, index and packs")
    p.add_argument("snapshot", nargs="?", help="only this snapshot's structure (default: all)")
    add_selection(p)
    p.add_argument("--read-data", action="store_true", help="also read every pack: decrypt every blob and recompute its id")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        if ctx.selection.given and not args.snapshot:
            raise UsageError(
                "--source and --host choose what a snapshot name means: name one ('latest'), or drop them to verify all"
            )
        name = ctx.snapshot(repo, args.snapshot) if args.snapshot else None
        r = verify(repo, name, args.read_data, BarProgress(ctx.err, not args.quiet))
    if ctx.json:
        render.print_json(r.as_dict())
    else:
        for e in r.errors:
            ctx.out.print(f"error: {e}", highlight=False, markup=False)
        what = f"{render.count(r.snapshots, 'snapshot')}, {render.count(r.chunks, 'chunk reference')}"
        if args.read_data:
            what += f", {render.count(r.packs, 'pack')} ({render.size(r.bytes_read)}) read"
        errors = render.count(len(r.errors), "error")
        ctx.out.print(f"{'ok' if r.ok else 'FAILED'}: {what}; {errors}, {r.seconds:.1f} s", highlight=False)
        if r.unreferenced_packs:
            ctx.out.print(
                f"{render.count(r.unreferenced_packs, 'pack')} not in any index: from a backup still running, "
                "or one interrupted (not an error)"
            )
    if not r.ok:
        raise VerifyFailed(f"{len(r.errors)} problems found")
    return 0
