"""``liferaft config check`` and ``liferaft config example``."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.cmd_daemon import config_arg
from liferaft.cli.context import Context
from liferaft.ops.config_example import EXAMPLE
from liferaft.ops.jobconfig import load


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[common], help="check the daemon's config, or print a complete example")
    ps = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    c = ps.add_parser("check", parents=[common], help="load and check the config; runs nothing")
    config_arg(c)
    c.set_defaults(run=check)
    e = ps.add_parser("example", parents=[common], help="print a complete, commented example config")
    e.set_defaults(run=example)


def check(args: argparse.Namespace, ctx: Context) -> int:
    config = load(args.config)
    for job in config.jobs.values():
        extra = [f"rpo {render.duration(job.rpo)}"] if job.rpo else []
        extra += ["tracked"] * job.track + [f"copy to {job.copy_to}"] * bool(job.copy_to)
        extra += [f"keep {', '.join(f'{k} {n}' for k, n in job.keep.items())}"] * bool(job.keep)
        ctx.out.print(
            f"job {job.name}: {job.source} -> {job.repository}, {job.schedule.text}; {'; '.join(extra)}", highlight=False
        )
    ctx.out.print(f"{args.config}: ok ({len(config.jobs)} jobs, {len(config.repositories)} repositories)", highlight=False)
    return 0


def example(args: argparse.Namespace, ctx: Context) -> int:
    print(EXAMPLE, end="")
    return 0
