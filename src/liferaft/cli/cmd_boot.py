"""``liferaft boot SNAPSHOT`` and ``liferaft drill SNAPSHOT|--untested``: a snapshot running in
QEMU straight from the repository, under a throw-away overlay; a drill waits for a success
signal on the console and stores its verdict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, add_selection
from liferaft.errors import DrillFailed, UsageError
from liferaft.format import SnapshotId
from liferaft.ops.boot import DEFAULT_EXPECT, BootOptions, booted, drill


def _machine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory", type=render.parse_size, default="1G", help="guest memory (default 1G)")
    p.add_argument("--cpus", type=render.positive(int), default=1, help="guest CPUs (default 1)")
    p.add_argument("--firmware", choices=["auto", "bios", "uefi"], default="auto",
                   help="default: BIOS where the disk has MBR boot code, else UEFI where it has an EFI partition")  # fmt: skip
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto", help="default: KVM where it works, else emulation")
    p.add_argument("--bus", choices=["virtio", "sata", "ide"], default="virtio", help="how the disk is attached (default virtio)")
    p.add_argument("--network", action="store_true", help="give the guest a NAT network (default: none)")
    add_selection(p)


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("boot", parents=[common], help="boot a snapshot in QEMU, nothing written to the repository")
    p.add_argument("snapshot", help="'latest' or a snapshot id prefix")
    p.add_argument("--console", type=Path, help="write the serial console to this file (default: this terminal)")
    _machine(p)
    p.set_defaults(run=run_boot)
    d = sub.add_parser("drill", parents=[common], help="boot a snapshot headless, wait for a sign of life, store the verdict")
    d.add_argument("snapshot", nargs="?", help="'latest' or a snapshot id prefix")
    d.add_argument("--untested", action="store_true", help="drill every snapshot that has no verdict yet")
    d.add_argument("--expect", default=DEFAULT_EXPECT, help=f"regex the console shows on success ({DEFAULT_EXPECT!r})")
    d.add_argument("--timeout", type=render.positive(float), default=600.0, help="seconds to wait for it (default 600)")
    d.add_argument("--console", type=Path, help="also keep the whole console in this file")
    d.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    _machine(d)
    d.set_defaults(run=run_drill)


def _options(args: argparse.Namespace) -> BootOptions:
    return BootOptions(args.memory // (1 << 20), args.cpus, args.firmware, args.accel, args.network, args.bus)


def run_boot(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        sid = ctx.snapshot(repo, args.snapshot)
        interactive = args.console is None and sys.stdin.isatty()
        with booted(repo, repo.load_snapshot(sid), _options(args), args.console, interactive) as guest:
            if not args.quiet:
                here = "console here (Ctrl-A X quits)" if interactive else "console on standard output"
                where = f"console in {args.console}" if args.console else here
                ctx.err.print(f"snapshot {sid[:12]} booting ({guest.firmware}, {guest.accel}); {where}; "
                              "the guest's writes are thrown away", highlight=False, markup=False)  # fmt: skip
            try:
                guest.process.wait()
            except KeyboardInterrupt:
                pass  # leaving stops QEMU
    return 0


def run_drill(args: argparse.Namespace, ctx: Context) -> int:
    if bool(args.snapshot) == bool(args.untested):
        raise UsageError("name a snapshot, or give --untested to drill every snapshot without a verdict")
    verdicts = []
    with ctx.open() as repo:
        if args.untested:
            done = repo.drills()
            sids = [SnapshotId(s) for s, _ in sorted(repo.snapshots(), key=lambda s: s[1].time) if s not in done]
        else:
            sids = [ctx.snapshot(repo, args.snapshot)]
        for sid in sids:
            if not args.quiet:
                ctx.err.print(f"drilling snapshot {sid[:12]} (waiting up to {args.timeout:g} s for {args.expect!r})",
                              highlight=False, markup=False)  # fmt: skip
            v = drill(repo, sid, _options(args), args.expect, args.timeout, args.console)
            verdicts.append(v)
            if not ctx.json:
                word = "pass" if v.passed else "FAIL"
                ctx.out.print(f"{word}: snapshot {sid[:12]}: {v.why} after {v.seconds:.1f} s ({v.firmware}, {v.accel})",
                              highlight=False, markup=False)  # fmt: skip
                if not v.passed:
                    ctx.out.print("console tail:\n" + v.console_tail, highlight=False, markup=False)
    if ctx.json:
        render.print_json([v.as_dict() for v in verdicts])
    failed = [v for v in verdicts if not v.passed]
    if failed:
        raise DrillFailed(f"{render.count(len(failed), 'snapshot')} of {len(verdicts)} did not show {args.expect!r}")
    if not verdicts and not args.quiet:
        ctx.note("every snapshot has a verdict already")
    return 0
