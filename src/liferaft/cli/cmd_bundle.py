"""``liferaft bundle FILE``: liferaft as one file that runs on a bare Python (a rescue system)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context
from liferaft.ops.bundle import bundle


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bundle", parents=[common], help="write liferaft and all it needs as one file, for a rescue system without internet"
    )
    p.add_argument("file", help="where to write it (e.g. /media/usb/liferaft.pyz)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    r = bundle(args.file)
    if ctx.json:
        render.print_json(asdict(r))
        return 0
    ctx.out.print(f"wrote {r.path} ({render.size(r.size)}): liferaft and {len(r.distributions) - 1} libraries", highlight=False)
    ctx.out.print(f"it runs with {r.python}, nothing else installed: python3 {r.path} --help", highlight=False, markup=False)
    return 0
