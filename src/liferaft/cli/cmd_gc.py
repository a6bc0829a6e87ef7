"""``liferaft gc``: reclaim the packs no snapshot references (two runs: condemn, then delete)."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.cmd_settings import duration_arg
from liferaft.cli.context import Context
from liferaft.cli.render import BarProgress
from liferaft.format.settings import SAFETY_MARGIN_S
from liferaft.ops.gc import REPACK_BELOW, GcResult, gc


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction from 0 to 1")
    return value


def add_gc_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--repack-below",
        type=_fraction,
        default=REPACK_BELOW,
        metavar="FRACTION",
        help=f"repack packs less referenced than this (default {REPACK_BELOW:g}; 0: never), so their space can be freed",
    )
    p.add_argument(
        "--safety-margin",
        type=duration_arg,
        metavar="DURATION",
        help="for this run: a condemned pack is deleted by a later run at least this long after (default: the "
        f"repository's setting, {SAFETY_MARGIN_S / 3600:g}h unless changed with 'liferaft settings'); "
        "0s is safe only while nothing else writes to the repository",
    )


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("gc", parents=[common], help="reclaim the space of forgotten snapshots")
    add_gc_options(p)
    p.add_argument("--dry-run", "-n", action="store_true", help="show what would be condemned and deleted")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def margin_of(args: argparse.Namespace, ctx: Context) -> float | None:
    """The one-run --safety-margin in seconds (None: the repository's setting), warned about at 0."""
    if args.safety_margin is None:
        return None
    margin: float = args.safety_margin.total_seconds()
    if margin == 0:
        ctx.warn("--safety-margin 0s: safe only while no backup or other run writes to this repository")
    return margin


def run(args: argparse.Namespace, ctx: Context) -> int:
    margin = margin_of(args, ctx)
    with ctx.open() as repo:
        r = gc(repo, margin, args.dry_run, BarProgress(ctx.err, not args.quiet), repack_below=args.repack_below)
    if ctx.json:
        render.print_json(r.as_dict())
        return 0
    print_gc(ctx, r)
    return 0


def print_gc(ctx: Context, r: GcResult) -> None:
    would = "would be " if r.dry_run else ""
    ctx.out.print(
        f"gc: {render.count(r.snapshots, 'snapshot')} reference {r.live_packs} of {render.count(r.packs, 'pack')}; "
        f"{r.deleted} {would}deleted ({render.size(r.deleted_bytes)} freed), {r.condemned} {would}condemned, "
        f"{r.repacked} {would}repacked ({render.size(r.repacked_bytes)} copied), "
        f"{r.waiting} waiting; index deltas {r.deltas_before} -> {r.deltas_after}; {r.seconds:.1f} s",
        highlight=False,
    )
    if r.condemned and not r.dry_run:
        margin = render.duration(r.margin)
        ctx.note(f"condemned packs are deleted by a later gc run, once the safety margin ({margin}) has passed")
    if r.locked:
        until = render.moment(r.locked_until) if r.locked_until else "their date"
        ctx.note(f"{render.count(r.locked, 'pack')} are under Object Lock until {until}: kept; a gc run after that deletes them")
    for note in r.notes:
        ctx.warn(note)
