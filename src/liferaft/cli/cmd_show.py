"""``liferaft show SNAPSHOT``: one snapshot's facts."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, add_selection
from liferaft.format.layout import DiskLayout, type_name
from liferaft.ops.mount import files_in
from liferaft.ops.snapshots import show


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("show", parents=[common], help="show one snapshot ('latest' or an id prefix)")
    p.add_argument("snapshot", help="'latest' or a snapshot id prefix")
    add_selection(p)
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        sid = ctx.snapshot(repo, args.snapshot)
        info = show(repo, sid)
        ranges = [(int(a), int(b)) for a, b in info["stats"].get("lost", [])]
        # a rescue backup's unreadable ranges: which files they hit, where the filesystem can say
        hits = files_in(repo, repo.load_snapshot(sid), ranges) if ranges else []
        info["lost_files"] = [asdict(h) for h in hits]
    if ctx.json:
        render.print_json(info)
        return 0
    stats = info.pop("stats")
    keys = ("id", "time", "hostname", "source", "source_kind", "provider", "consistency", "size", "chunk_size", "chunks")
    for key in (*keys, "image_digest"):
        value = info[key]
        if key in {"size", "chunk_size"}:
            value = f"{render.size(value)} ({value} bytes)"
        ctx.out.print(f"{key:>17}  {value}", highlight=False)
    drill = info.get("drill")
    if drill:
        word = "pass" if drill["passed"] else "FAIL"
        ctx.out.print(f"{'drill':>17}  {word} ({drill['why']}, {drill['seconds']:.1f} s; {drill['time'][:19]}Z, "
                      f"{drill['firmware']}, {drill['accel']})", highlight=False, markup=False)  # fmt: skip
        if not drill["passed"]:
            ctx.out.print("console tail:\n" + drill["console_tail"], highlight=False, markup=False)
    lost = stats.pop("lost", [])
    for key, value in sorted(stats.items()):
        if "bytes" in key.split("_"):  # new_bytes, bytes_read, ...
            value = render.size(value)
        elif key == "frozen_at":  # the instant a live image stands for
            value = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        ctx.out.print(f"{key:>17}  {value}", highlight=False, markup=False)
    if info.get("layout"):
        disk = DiskLayout.from_dict(info["layout"])
        ctx.out.print(f"\npartition table: {disk.table}", highlight=False)
        kinds = {p.number: p for p in disk.partitions}
        rows = []
        for r in disk.regions:
            p = kinds.get(r.number)
            rows.append(
                [
                    str(r.number) if r.number else "-",
                    render.size(r.start),
                    render.size(r.size),
                    p.name if p else "",
                    type_name(p.type) if p else "",
                    r.filesystem or "?",
                    r.label,
                    r.uuid,
                    render.size(r.used),
                    r.imaged,
                ]
            )
        columns = [
            render.Column("#"),
            render.Column("start", right=True, drop=3),
            render.Column("size", right=True),
            render.Column("name", drop=4),
            render.Column("type", wrap=True),
            render.Column("fs"),
            render.Column("label", drop=2),
            render.Column("uuid", drop=5),
            render.Column("used", right=True),
            render.Column("imaged", drop=1),
        ]
        render.table(ctx.out, columns, rows)
        for r in disk.regions:
            for what in (r.recovery, r.note):
                if what:
                    ctx.out.print(f"partition {r.number or '-'}: {what}", highlight=False, markup=False)
    if lost:
        ctx.out.print(f"\nunreadable at backup (restored as zeros; `backup --rescue`): {len(lost)} ranges", highlight=False)
        regions = DiskLayout.from_dict(info["layout"]).regions if info.get("layout") else ()
        for lo, hi in lost:
            hit = [
                f"partition {r.number}" if r.number else "the filesystem"
                for r in regions
                if lo < r.start + r.size and r.start < hi
            ]
            ctx.out.print(
                f"  bytes {lo}-{hi} ({render.size(hi - lo)})" + (f" in {', '.join(hit)}" if hit else ""), highlight=False
            )
        for line in render.files_hit(hits):
            ctx.out.print(f"  {line}", highlight=False, markup=False)
    return 0
