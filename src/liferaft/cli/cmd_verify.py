"""``liferaft verify [SNAPSHOT]``: check the repository's structure, or all its data."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, add_selection
from liferaft.cli.render import BarProgress
from liferaft.errors import UsageError, VerifyFailed, VerifyHealed
from liferaft.ops.verify import CLEAN, DAMAGED, HEALED, VerifyResult, parse_subset, verify


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify", parents=[common], help="check snapshots, index and packs")
    p.add_argument("snapshot", nargs="?", help="only this snapshot's structure (default: all)")
    add_selection(p)
    p.add_argument("--read-data", action="store_true", help="also read every pack: decrypt every blob and recompute its id")
    p.add_argument(
        "--read-data-subset", metavar="K/N", type=_subset,
        help="like --read-data, for the K-th of N shares of the packs only (by pack id): runs with K = 1..N read every pack once",
    )  # fmt: skip
    p.add_argument(
        "--files", action="store_true",
        help="name the files that lost bytes fall in, where the filesystem can say (ext; mounts each snapshot that lacks data)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        if ctx.selection.given and not args.snapshot:
            raise UsageError(
                "--source and --host choose what a snapshot name means: name one ('latest'), or drop them to verify all"
            )
        name = ctx.snapshot(repo, args.snapshot) if args.snapshot else None
        read_data = args.read_data or args.read_data_subset is not None
        subset = None if args.read_data else args.read_data_subset
        r = verify(repo, name, read_data, BarProgress(ctx.err, not args.quiet), files=args.files, subset=subset)
    if ctx.json:
        render.print_json(r.as_dict())
    else:
        _print(ctx, r, read_data)
    if r.status == DAMAGED:
        lost = sum(loss.bytes for loss in r.lost)
        verb = "lacks" if len(r.lost) == 1 else "lack"
        raise VerifyFailed(
            f"{render.count(len(r.lost), 'snapshot')} {verb} {render.size(lost)}; {len(r.found) + len(r.errors)} problems found"
        )
    if r.status == HEALED:
        what = [f"{r.damaged} damaged chunks, {r.healed} of them stored again since"] if r.damaged else []
        what += [f"{len(r.unreadable)} unreadable index deltas; `liferaft repair` writes them anew"] if r.unreadable else []
        raise VerifyHealed("; ".join(what))
    return 0


def _subset(text: str) -> tuple[int, int]:
    try:
        return parse_subset(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _print(ctx: Context, r: VerifyResult, read_data: bool) -> None:
    for e in r.errors:
        ctx.out.print(f"error: {e}", highlight=False, markup=False)
    for e in r.found:
        ctx.out.print(f"damaged: {e}", highlight=False, markup=False)
    for loss in r.lost:
        shown = ", ".join(f"{render.size(a)}-{render.size(b)}" for a, b in loss.ranges[:4])
        more = f" and {len(loss.ranges) - 4} more ranges" if len(loss.ranges) > 4 else ""
        ctx.out.print(
            f"lost: snapshot {loss.snapshot_id[:12]} ({loss.hostname}:{loss.source}) lacks {render.size(loss.bytes)} "
            f"in {render.count(loss.chunks, 'chunk')}, at {shown}{more}, in {', '.join(loss.partitions) or 'its image'}; "
            "a new backup of that source stores them again",
            highlight=False,
            markup=False,
        )
        for line in render.files_hit(loss.files):
            ctx.out.print(f"  {line}", highlight=False, markup=False)
    for note in r.notes:
        ctx.note(note)
    what = f"{render.count(r.snapshots, 'snapshot')}, {render.count(r.chunks, 'chunk reference')}"
    if read_data:
        share = f" of share {r.subset}" if r.subset else ""
        what += f", {render.count(r.packs, 'pack')}{share} ({render.size(r.bytes_read)}) read"
    if r.damaged:
        what += f"; {r.damaged} damaged chunks, {r.healed} healed"
    word = {CLEAN: "ok", HEALED: "ok (healed)", DAMAGED: "FAILED"}[r.status]
    ctx.out.print(f"{word}: {what}; {render.count(len(r.errors), 'error')}, {r.seconds:.1f} s", highlight=False)
    if r.recorded:
        ctx.out.print(
            f"the damage is recorded ({r.recorded}): the next backup of each source stores those chunks again", highlight=False
        )
    if r.unreferenced_packs:
        ctx.out.print(
            f"{render.count(r.unreferenced_packs, 'pack')} not in any index: from a backup still running, "
            "or one interrupted (not an error)"
        )
