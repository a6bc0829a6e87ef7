"""``liferaft backup SOURCE``: image a disk, partition or image file into the repository."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context
from liferaft.cli.render import BarProgress
from liferaft.ops.backup import backup, stdin_source
from liferaft.source import providers
from liferaft.source.options import LiveOptions

DEFAULTS = LiveOptions()


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("backup", parents=[common], help="back up a block device or disk image file")
    p.add_argument(
        "source",
        help="block device (e.g. /dev/sdb), disk image file, a mountpoint (its device), or - for standard input "
        "(a redirected device or file is read in place; a stream is spooled, sparse, into --spool DIR first)",
    )
    p.add_argument(
        "--provider",
        default="auto",
        choices=["auto", *providers.names()],
        help="how a consistent view is had: freeze_trace images mounted filesystems live, reflink clones an image "
        "file in use (XFS, btrfs), plain needs a source nothing uses; auto (default) takes freeze_trace when "
        "anything on the source is mounted",
    )
    live = p.add_argument_group("live backups (freeze_trace)")
    live.add_argument(
        "--max-freeze",
        type=render.positive(float),
        default=DEFAULTS.max_freeze,
        metavar="S",
        help=f"the watchdog thaws after S seconds in any case (default {DEFAULTS.max_freeze:g})",
    )
    live.add_argument(
        "--pre-freeze", metavar="CMD", help="shell command run just before the freeze; its failure aborts the backup"
    )
    live.add_argument("--post-thaw", metavar="CMD", help="shell command run just after the thaw")
    live.add_argument(
        "--max-passes",
        type=render.positive(int),
        default=DEFAULTS.max_passes,
        metavar="N",
        help=f"live copy passes at most before the freeze (default {DEFAULTS.max_passes})",
    )
    live.add_argument(
        "--freeze-memory",
        metavar="SIZE",
        help=f"at most this much changed data is copied into memory while frozen (default {DEFAULTS.frozen_memory >> 20}M)",
    )
    live.add_argument(
        "--trace-buffer",
        type=render.positive(int),
        default=DEFAULTS.trace_buffer_kb,
        metavar="KB",
        help=f"write-trace ring buffer per CPU (default {DEFAULTS.trace_buffer_kb})",
    )
    p.add_argument("--all-blocks", action="store_true", help="image every byte, free filesystem blocks too (bit-exact)")
    p.add_argument(
        "--rescue",
        action="store_true",
        help="a failing disk: read around unreadable sectors, store zeros there and record where (else a read error "
        "stops the backup, naming the byte)",
    )
    p.add_argument(
        "--host", metavar="NAME", help="the host name the snapshot records (default: this machine's; forget groups by it)"
    )
    p.add_argument(
        "--lock-days",
        type=render.positive(float),
        metavar="N",
        help="S3 Object Lock: the server refuses to delete what this backup writes for N days "
        "(default: the repository's setting)",
    )
    p.add_argument("--as", dest="record_as", metavar="NAME", help="the source the snapshot names (for -: default 'stdin')")
    p.add_argument("--spool", metavar="DIR", help="where a stream on standard input is spooled (default: the temp folder)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.source != "-":
        return _run(args, ctx, args.source, args.record_as)
    with stdin_source(args.spool, BarProgress(ctx.err, not args.quiet)) as (path, spooled):
        return _run(args, ctx, path, args.record_as or ("stdin" if spooled else None), "plain" if spooled else None)


def _run(args: argparse.Namespace, ctx: Context, source: str, record_as: str | None, provider: str | None = None) -> int:
    with ctx.open(create_default=True) as repo:
        options = LiveOptions(
            max_freeze=args.max_freeze,
            pre_freeze=args.pre_freeze,
            post_thaw=args.post_thaw,
            max_passes=args.max_passes,
            trace_buffer_kb=args.trace_buffer,
            frozen_memory=render.parse_size(args.freeze_memory) if args.freeze_memory else DEFAULTS.frozen_memory,
            rescue=args.rescue,
        )
        bar = BarProgress(ctx.err, not args.quiet)
        lock_s = args.lock_days * 86400 if args.lock_days is not None else None
        r = backup(
            repo, source, provider or args.provider, bar, all_blocks=args.all_blocks, live=options, host=args.host,
            lock_s=lock_s, record_as=record_as,
        )  # fmt: skip
    if ctx.json:
        render.print_json(r.as_dict())
        return 0
    rate = r.size / r.seconds if r.seconds else 0
    chunks = render.count(r.chunks, "chunk")
    ctx.out.print(f"snapshot {r.snapshot_id[:12]} saved: {r.source} ({render.size(r.size)}, {chunks})", highlight=False)
    ctx.out.print(
        f"  imaged in {r.seconds:.1f} s ({render.size(rate)}/s of disk); read {render.size(r.bytes_read)}; "
        f"{render.count(r.zero_chunks, 'zero chunk')}, {render.count(r.free_chunks, 'free chunk')} (not read); "
        f"new {render.size(r.new_bytes)} in {render.count(r.new_chunks, 'chunk')}, "
        f"stored {render.size(r.stored_bytes)}"
        + (f" ({r.stored_bytes / r.new_bytes:.0%} of new)" if r.new_bytes else "")
        + (f", and {render.size(r.map_stored_bytes)} of chunk map" if r.map_stored_bytes else ""),
        highlight=False,
    )
    if r.live:
        lv = r.live
        ctx.out.print(
            f"  live ({r.provider}): {', '.join(lv['mountpoints'])} frozen for {lv['freeze_ms']:.0f} ms; "
            f"{render.count(lv['passes'], 'pass', 'passes')}, {render.size(lv['reread_bytes'])} re-read, "
            f"{render.count(lv['frozen_chunks'], 'chunk')} copied while frozen",
            highlight=False,
        )
    for note in r.notes:
        ctx.note(note)
    for p in r.partitions:
        if p["note"]:
            ctx.warn(f"partition {p['number']}: {p['note']}")
    return 0
