"""``liferaft track SOURCE``: keep a write trace of a device running between backups, so that the
next live backup reads only the chunks written since the last one (changed-block tracking)."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli.context import Context
from liferaft.source.tracking import Tracker
from liferaft.source.usage import traced_device


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("track", parents=[common], help="track changed blocks of a device between backups (runs until stopped)")
    p.add_argument("source", help="block device (or image file attached to a loop device) to track")
    p.add_argument("--trace-buffer", type=int, default=8192, metavar="KB", help="write-trace ring buffer per CPU (default 8192)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    device, note = traced_device(args.source)
    if note:
        ctx.err.print(f"note: {note}", highlight=False, markup=False)
    tracker = Tracker(device, args.trace_buffer)

    def ready() -> None:
        if not args.quiet:
            ctx.err.print(
                f"tracking writes to {device} (tracker {tracker.id}, state {tracker.state_path}); stop with Ctrl-C or SIGTERM",
                highlight=False,
                markup=False,
            )

    tracker.serve(ready)
    return 0
