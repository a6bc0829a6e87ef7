"""``liferaft track SOURCE``: keep a write trace of a device running between backups, so that the
next live backup reads only the chunks written since the last one (changed-block tracking)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context
from liferaft.source.linux.tracking import Tracker, status
from liferaft.source.options import BUFFER_KB
from liferaft.source.usage import source_device, traced_device


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("track", parents=[common], help="track changed blocks of a device between backups (runs until stopped)")
    p.add_argument("source", help="block device (or image file attached to a loop device) to track")
    p.add_argument("--status", action="store_true", help="only report whether a tracker runs for SOURCE, and what it saw")
    p.add_argument(
        "--trace-buffer",
        type=render.positive(int),
        default=BUFFER_KB,
        metavar="KB",
        help=f"write-trace ring buffer per CPU (default {BUFFER_KB})",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    source, mount_note = source_device(args.source)
    device, note = traced_device(source)
    for n in (mount_note, note):
        if n:
            ctx.note(n)
    if args.status:
        return _status(device, ctx)
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


def _status(device: str, ctx: Context) -> int:
    """Exit 0 when a tracker runs (for monitoring), 1 when none does."""
    st = status(device)
    if st is None:
        ctx.out.print(f"no change tracker runs for {device}: the next backup reads every used chunk", highlight=False)
        return 1
    when = datetime.fromtimestamp(st.started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lost = f"; events lost in epoch {st.lost_epoch}" if st.lost_epoch else ""
    ctx.out.print(
        f"tracker {st.tracker} (pid {st.pid}) tracks {device} since {when}; epoch {st.epoch}{lost}; "
        f"{render.size(st.changed_bytes)} written since the last backup began (as of {time.time() - st.saved:.0f} s ago)",
        highlight=False,
    )
    return 0
