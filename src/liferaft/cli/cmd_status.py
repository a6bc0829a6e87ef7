"""``liferaft status``: each job's last and next run, RPO and verdicts (exit 82 when any is failing
or past its RPO, for Nagios-style checks); ``liferaft history [JOB]``: past runs and their logs."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

from liferaft.cli import render
from liferaft.cli.cmd_daemon import config_arg
from liferaft.cli.context import Context
from liferaft.errors import JobsUnhealthy
from liferaft.ops.jobconfig import load
from liferaft.ops.jobstatus import history, status


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="the daemon's jobs: last and next run, RPO, verdicts")
    config_arg(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(run=run)
    h = sub.add_parser("history", parents=[common], help="past runs of the daemon's jobs, with their logs")
    config_arg(h)
    h.add_argument("job", nargs="?", help="only this job")
    h.add_argument("--limit", type=render.positive(int), default=20, help="how many runs (default 20)")
    h.add_argument("--log", action="store_true", help="also print each run's log")
    h.add_argument("--json", action="store_true", help="print the runs as JSON")
    h.set_defaults(run=run_history)


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def run(args: argparse.Namespace, ctx: Context) -> int:
    st = status(load(args.config))
    if ctx.json:
        render.print_json(st.as_dict())
    else:
        ctx.out.print(f"daemon: {'running, pid ' + str(st.pid) if st.running else 'not running'}", highlight=False)
        now = time.time()
        for j in st.jobs:
            last = j.last_run
            lr = f"{last['result']} at {_when(last['started'])}" if last else "never ran"
            if last and last.get("duration") is not None:
                new, stored = render.size(last["new_bytes"] or 0), render.size(last["stored_bytes"] or 0)
                lr += f" ({render.duration(last['duration'])}, {new} new, {stored} stored)"
            rpo = "-" if j.rpo_age is None else render.duration(j.rpo_age)
            if j.rpo:
                rpo += f" of {render.duration(j.rpo)} {'ok' if j.rpo_ok else 'MISSED'}"
            nxt = _when(j.next_run) + (f" (in {render.duration(max(0.0, j.next_run - now))})" if j.next_run else "")
            ctx.out.print(f"{j.job}: {j.source} -> {j.repository}", highlight=False)
            ctx.out.print(f"  last: {lr}; next: {nxt}; RPO age: {rpo}", highlight=False, markup=False)
            more = []
            if j.tracking:
                more.append(f"tracker {j.tracking}")
            for what, run_ in (("verify", j.last_verify), ("drill", j.last_drill)):
                if run_:
                    why = f": {run_['message']}" if run_["result"] == "failed" else ""
                    more.append(f"last {what} {run_['result']} at {_when(run_['started'])}{why}")
            if j.repository_free is not None:
                more.append(f"{render.size(j.repository_free)} free at the repository")
            if last and last["result"] == "failed":
                more.append(f"failing: {last['message']}")
            if more:
                ctx.out.print("  " + "; ".join(more), highlight=False, markup=False)
    bad = [j.job for j in st.jobs if not j.healthy]
    if bad:
        raise JobsUnhealthy(f"failing or past their RPO: {', '.join(bad)}")
    return 0


def run_history(args: argparse.Namespace, ctx: Context) -> int:
    runs = history(load(args.config), args.job, args.limit)
    if ctx.json:
        render.print_json([{k: v for k, v in r.__dict__.items() if args.log or k != "log"} for r in runs])
        return 0
    for r in runs:
        took = render.duration(r.duration) if r.duration is not None else "-"
        ctx.out.print(
            f"{_when(r.started)}  {r.job:<12} {r.kind:<7} {r.result:<9} {took:>7}  {r.message or ''}",
            highlight=False,
            markup=False,
        )
        if args.log and r.log:
            ctx.out.print(r.log.rstrip(), highlight=False, markup=False)
    return 0
