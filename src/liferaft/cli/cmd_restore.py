"""``liferaft restore SNAPSHOT TARGET``: rebuild an image onto a file or block device."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, add_selection
from liferaft.cli.render import BarProgress
from liferaft.errors import UsageError
from liferaft.ops import fsck
from liferaft.ops.files import restore_files
from liferaft.ops.resize import restore_resized
from liferaft.ops.restore import restore, stream


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("restore", parents=[common], help="restore a snapshot to an image file or block device")
    p.add_argument("snapshot", help="'latest' or a snapshot id prefix")
    p.add_argument(
        "target", nargs="?",
        help="image file (created sparse), block device (not mounted), or - for standard output (a raw stream)",
    )  # fmt: skip
    add_selection(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing file; restore into the start of a larger device")
    p.add_argument("--verify", action="store_true", help="read the target back and check it against the backup's image digest")
    p.add_argument(
        "--fsck",
        action="store_true",
        help="then replay each filesystem's journal on a throw-away copy and check it (exit 51 if not clean)",
    )
    p.add_argument("--partition", type=int, metavar="N", help="restore only partition N (see 'liferaft show')")
    p.add_argument("--discard", action="store_true", help="discard free blocks on a device instead of zeroing them")
    p.add_argument("--delta", action="store_true", help="the target holds an older state: write only the chunks that differ")
    p.add_argument("--size", help="size of the target file when it is to differ from the image's (e.g. 8G)")
    p.add_argument("--grow", action="store_true", help="larger target: extend the last partition and its filesystem")
    p.add_argument("--shrink", action="store_true", help="smaller target: shrink the last partition's filesystem to fit")
    p.add_argument(
        "--staging",
        metavar="DIR",
        help="where --shrink stages the partition and --fsck its copies (sparse; default: the temp folder, "
        "or the target's folder for --fsck of a file)",
    )
    p.add_argument("--files", nargs="+", metavar="PATH", help="only these files and folders (with --to), not the disk")
    p.add_argument("--to", type=Path, metavar="DIR", help="where --files go, each at its own path under DIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.files or args.to:
        return run_files(args, ctx)
    if not (args.target or "").strip():
        raise UsageError("give a target: an image file, a block device, or - for standard output")
    if args.target == "-":
        return run_stream(args, ctx)
    with ctx.open() as repo:
        bar = BarProgress(ctx.err, not args.quiet)
        sid = ctx.snapshot(repo, args.snapshot)
        resized = args.grow or args.shrink or args.size or (args.force and Path(args.target).is_block_device())
        if resized and args.partition is None and not args.delta:
            if args.fsck:
                raise UsageError("--fsck checks a restore as it was backed up: it does not go with --grow, --shrink or --size")
            size = render.parse_size(args.size) if args.size else None
            r = restore_resized(repo, sid, args.target, size, args.grow, args.shrink, args.force, bar, args.staging, args.verify)
        else:
            r = restore(
                repo, sid, args.target, args.force, args.verify, bar,
                partition=args.partition, discard=args.discard, delta=args.delta,
            )  # fmt: skip
        checked = fsck.check(repo, repo.load_snapshot(sid), args.target, args.partition, args.staging) if args.fsck else []
    if ctx.json:
        render.print_json({**r.as_dict(), **({"fsck": [asdict(c) for c in checked]} if args.fsck else {})})
        return 0
    what = f"partition {r.partition} of {r.snapshot_id[:12]}" if r.partition is not None else r.snapshot_id[:12]
    read = f"{render.count(r.chunks_read, 'chunk')} read and compared, " if args.delta else ""
    ctx.out.print(
        f"restored {what} to {r.target}: {render.size(r.size)}; {read}{render.count(r.chunks_written, 'chunk')} written "
        f"({render.size(r.bytes_written)}), {r.zero_chunks} zero, {r.free_chunks} free; {r.seconds:.1f} s"
        + ("; verified: identical to the backup" if r.verified else ""),
        highlight=False,
    )
    for c in checked:
        ctx.out.print(f"  fsck partition {c.number or '-'} ({c.filesystem}): {c.verdict}", highlight=False, markup=False)
    for note in r.notes:
        ctx.note(note)
    return 0


def run_files(args: argparse.Namespace, ctx: Context) -> int:
    if not args.files or not args.to or args.target:
        raise UsageError("restore --files PATH... --to DIR: name the paths and the folder for them (and no TARGET)")
    with ctx.open() as repo:
        sid = ctx.snapshot(repo, args.snapshot)
        r = restore_files(
            repo, sid, repo.load_snapshot(sid), args.files, args.to, args.partition, BarProgress(ctx.err, not args.quiet)
        )  # fmt: skip
    for w in r.warnings:
        ctx.warn(w)
    if ctx.json:
        render.print_json(r.as_dict())
        return 0
    ctx.out.print(
        f"restored {render.count(r.files, 'file')} ({render.size(r.bytes)}), {render.count(r.folders, 'folder')} and "
        f"{render.count(r.links, 'link')} from {r.partition} of {sid[:12]} to {r.target}; {r.seconds:.1f} s",
        highlight=False,
    )
    return 0


def run_stream(args: argparse.Namespace, ctx: Context) -> int:
    """restore SNAPSHOT -: the raw image on standard output; what it did goes to stderr."""
    given = [o for o, on in (("--verify", args.verify), ("--fsck", args.fsck), ("--delta", args.delta), ("--grow", args.grow),
                             ("--shrink", args.shrink), ("--size", args.size), ("--json", args.json)) if on]  # fmt: skip
    if given:
        raise UsageError(f"{', '.join(given)} cannot go with a stream to standard output (-)")
    if sys.stdout.isatty():
        raise UsageError("standard output is a terminal: pipe the image into a file, dd, ssh or zstd")
    with ctx.open() as repo:
        sid = ctx.snapshot(repo, args.snapshot)
        r = stream(repo, sid, sys.stdout.fileno(), BarProgress(ctx.err, not args.quiet), partition=args.partition)
    what = f"partition {r.partition} of {r.snapshot_id[:12]}" if r.partition is not None else r.snapshot_id[:12]
    ctx.err.print(f"streamed {what}: {render.size(r.size)} in {r.seconds:.1f} s", highlight=False, markup=False)
    return 0
