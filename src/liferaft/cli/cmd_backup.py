"""``liferaft backup SOURCE``: image a disk, partition or image file into the repository."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context
from liferaft.cli.render import BarProgress
from liferaft.ops.backup import backup


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("backup", parents=[common], help="back up a block device or disk image file")
    p.add_argument("source", help="block device (e.g. /dev/sdb) or disk image file")
    p.add_argument("--provider", default="plain", help="how a consistent view is had (default: plain, for sources not in use)")
    p.add_argument("--all-blocks", action="store_true", help="image every byte, free filesystem blocks too (bit-exact)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    repo = ctx.open(create_default=True)
    try:
        r = backup(repo, args.source, args.provider, BarProgress(ctx.err, not args.quiet), all_blocks=args.all_blocks)
    finally:
        repo.close()
    if ctx.json:
        render.print_json(r.as_dict())
        return 0
    rate = r.size / r.seconds if r.seconds else 0
    ctx.out.print(f"snapshot {r.snapshot_id[:12]} saved: {r.source} ({render.size(r.size)}, {r.chunks} chunks)", highlight=False)
    ctx.out.print(
        f"  imaged in {r.seconds:.1f} s ({render.size(rate)}/s of disk); read {render.size(r.bytes_read)}; "
        f"{r.zero_chunks} zero chunks, {r.free_chunks} free chunks (not read); "
        f"new {render.size(r.new_bytes)} in {r.new_chunks} chunks, "
        f"stored {render.size(r.stored_bytes)}" + (f" ({r.stored_bytes / r.new_bytes:.0%} of new)" if r.new_bytes else ""),
        highlight=False,
    )
    for p in r.partitions:
        if p["note"]:
            ctx.err.print(f"warning: partition {p['number']}: {p['note']}", highlight=False, markup=False)
    return 0
