"""``liferaft forget --keep-...``: drop the snapshots no keep rule keeps (per host and source)."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.cmd_gc import add_gc_options, margin_of, print_gc
from liferaft.cli.cmd_settings import duration_arg
from liferaft.cli.context import Context, add_selection
from liferaft.cli.render import BarProgress
from liferaft.ops.forget import KeepPolicy, forget
from liferaft.ops.gc import gc


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("forget", parents=[common], help="drop the snapshots no keep rule keeps (data goes with gc)")
    p.add_argument(
        "snapshots", nargs="*", metavar="SNAPSHOT", help="forget exactly these (ids, prefixes, latest) instead of by rules"
    )
    add_selection(p)
    count = render.positive(int)
    for rule, what in (
        ("last", "the newest N snapshots"),
        ("hourly", "the newest snapshot of each of the last N hours that have one"),
        ("daily", "... of each of the last N days"),
        ("weekly", "... of each of the last N ISO weeks"),
        ("monthly", "... of each of the last N months"),
        ("yearly", "... of each of the last N years"),
    ):
        p.add_argument(f"--keep-{rule}", type=count, default=0, metavar="N", help=f"keep {what}")
    p.add_argument(
        "--keep-within",
        type=duration_arg,
        metavar="DURATION",
        help="keep every snapshot within DURATION of the newest (7d, 12h, 2w)",
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="show each snapshot's fate, remove nothing")
    p.add_argument("--prune", action="store_true", help="run gc afterwards")
    add_gc_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    policy = KeepPolicy(
        args.keep_last, args.keep_hourly, args.keep_daily, args.keep_weekly, args.keep_monthly, args.keep_yearly, args.keep_within
    )
    margin = margin_of(args, ctx) if args.prune else None
    with ctx.open() as repo:
        fates = forget(repo, policy, ctx.selection, args.dry_run, tuple(args.snapshots))
        collected = None
        if args.prune and not args.dry_run:
            bar = BarProgress(ctx.err, not args.quiet)
            collected = gc(repo, margin, progress=bar, repack_below=args.repack_below)
    if ctx.json:
        render.print_json({"snapshots": [f.as_dict() for f in fates], "gc": collected.as_dict() if collected else None})
        return 0
    short = render.short_ids([f.snapshot_id for f in fates])
    rows = [
        [
            short[f.snapshot_id],
            f.time[:19].replace("T", " "),
            f.hostname,
            f.source,
            "keep" if f.keep else "forget",
            ", ".join(f.reasons),
        ]
        for f in fates
    ]
    columns = [
        render.Column("id"),
        render.Column("time"),
        render.Column("host", drop=1),
        render.Column("source", wrap=True),
        render.Column("fate"),
        render.Column("kept by", wrap=True),
    ]
    render.table(ctx.out, columns, rows)
    gone = sum(not f.keep for f in fates)
    verb = "would forget" if args.dry_run else "forgot"
    ctx.out.print(f"{verb} {render.count(gone, 'snapshot')}, kept {len(fates) - gone}", highlight=False)
    if collected is not None:
        print_gc(ctx, collected)
    elif gone and not args.dry_run:
        ctx.note("their data stays until `liferaft gc` reclaims it")
    return 0
