"""``liferaft forget --keep-...``: drop the snapshots no keep rule keeps (per host and source)."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.cmd_gc import add_gc_options, print_gc
from liferaft.cli.context import Context, add_selection
from liferaft.cli.render import BarProgress
from liferaft.ops.forget import KeepPolicy, forget, parse_duration
from liferaft.ops.gc import gc


def _duration(text: str) -> object:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("forget", parents=[common], help="drop the snapshots no keep rule keeps (data goes with gc)")
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
        type=_duration,
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
    with ctx.open() as repo:
        fates = forget(repo, policy, ctx.selection, args.dry_run)
        collected = None
        if args.prune and not args.dry_run:
            bar = BarProgress(ctx.err, not args.quiet)
            collected = gc(repo, args.safety_margin.total_seconds(), progress=bar, repack_below=args.repack_below)
    if ctx.json:
        render.print_json({"snapshots": [f.as_dict() for f in fates], "gc": collected.as_dict() if collected else None})
        return 0
    rows = [
        [
            f.snapshot_id[:12],
            f.time[:19].replace("T", " "),
            f.hostname,
            f.source,
            "keep" if f.keep else "forget",
            ", ".join(f.reasons),
        ]
        for f in fates
    ]
    render.table(ctx.out, ["id", "time", "host", "source", "fate", "kept by"], rows)
    gone = sum(not f.keep for f in fates)
    verb = "would forget" if args.dry_run else "forgot"
    ctx.out.print(f"{verb} {render.count(gone, 'snapshot')}, kept {len(fates) - gone}", highlight=False)
    if collected is not None:
        print_gc(ctx, collected)
    elif gone and not args.dry_run:
        ctx.note("their data stays until `liferaft gc` reclaims it")
    return 0
