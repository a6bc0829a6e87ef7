"""``liferaft snapshots``: list the snapshots."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, add_selection
from liferaft.errors import CorruptRepository
from liferaft.ops.snapshots import list_snapshots


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("snapshots", parents=[common], help="list snapshots, oldest first")
    add_selection(p)
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    damaged: list[str] = []
    with ctx.open() as repo:
        rows = list_snapshots(repo, ctx.selection, damaged)
    if ctx.json:
        render.print_json([r.as_dict() for r in rows])
    else:
        short = render.short_ids([r.snapshot_id for r in rows])
        drilled = any(r.drill for r in rows)  # the column only once a snapshot was drilled
        render.table(
            ctx.out,
            [
                render.Column("id"),
                render.Column("time"),
                render.Column("host", drop=1),
                render.Column("source", wrap=True),
                render.Column("provider", drop=3),
                render.Column("size", right=True),
                render.Column("new", right=True, drop=2),
                render.Column("stored", right=True, drop=4),
                *([render.Column("drill", drop=5)] if drilled else []),
            ],
            [
                [
                    short[r.snapshot_id],
                    r.time[:19].replace("T", " "),
                    r.hostname,
                    r.source,
                    r.provider,
                    render.size(r.size),
                    render.size(r.new_bytes),
                    render.size(r.stored_bytes),
                    *([] if not drilled else ["-" if r.drill is None else "pass" if r.drill.passed else "FAIL"]),
                ]
                for r in rows
            ],
        )
        ctx.out.print(render.count(len(rows), "snapshot"), highlight=False)
    for message in damaged:  # the readable ones are listed all the same
        ctx.warn(message)
    if damaged:
        raise CorruptRepository(f"{render.count(len(damaged), 'snapshot')} could not be read (not listed)")
    return 0
