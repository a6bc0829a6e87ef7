"""``liferaft repair``: rebuild the index from the packs, salvage what damaged packs still hold."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context
from liferaft.cli.render import BarProgress
from liferaft.ops.repair import repair


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "repair", parents=[common], help="rebuild the index from the packs and salvage the good blobs of damaged packs"
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="read everything and report; write nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        r = repair(repo, args.dry_run, BarProgress(ctx.err, not args.quiet))
    if ctx.json:
        render.print_json(r.as_dict())
        return 0
    would = "would be " if r.dry_run else ""
    ctx.out.print(
        f"repair: {render.count(r.packs, 'pack')} ({render.size(r.bytes_read)}) read; {r.blobs} good blobs {would}indexed, "
        f"{r.damaged_blobs} damaged; {r.salvaged_packs} packs {would}salvaged ({r.salvaged_blobs} blobs copied into new packs); "
        f"index deltas {r.deltas_before} -> {r.deltas_after}; {r.cleared} recorded blobs read well again; {r.seconds:.1f} s",
        highlight=False,
    )
    for note in r.notes:
        ctx.warn(note)
    for loss in r.incomplete:
        ctx.out.print(
            f"incomplete: snapshot {loss.snapshot_id[:12]} ({loss.hostname}:{loss.source}) lacks {render.size(loss.bytes)} "
            f"in {', '.join(loss.partitions) or 'its image'}: a new backup of {loss.source} on {loss.hostname} heals it",
            highlight=False,
            markup=False,
        )
    if r.salvaged_packs and not r.dry_run:
        ctx.note("the damaged packs are no longer indexed: gc removes them in its two runs")
    return 0
