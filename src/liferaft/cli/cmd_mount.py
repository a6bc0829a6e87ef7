"""``liferaft mount SNAPSHOT DIR`` and ``liferaft umount DIR``: a snapshot's disk and partitions as
read-only files, until unmounted (``liferaft umount``, Ctrl-C or SIGTERM)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, add_selection
from liferaft.errors import MountFailed
from liferaft.ops.mount import Mount, unmount


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("mount", parents=[common], help="a snapshot's disk.img and partN.img as read-only files, until unmounted")
    p.add_argument("snapshot", help="'latest' or a snapshot id prefix")
    p.add_argument("directory", type=Path, help="an empty directory to mount on")
    p.add_argument(
        "--browse", action="store_true",
        help="also mount each filesystem read-only under DIR/partN (ext, XFS, btrfs, NTFS; FAT where the kernel has vfat)",
    )  # fmt: skip
    add_selection(p)
    p.set_defaults(run=run)
    u = sub.add_parser("umount", parents=[common], help="unmount what `liferaft mount` mounted")
    u.add_argument("directory", type=Path)
    u.set_defaults(run=run_umount)


def run(args: argparse.Namespace, ctx: Context) -> int:
    logging.basicConfig(format="liferaft: %(message)s", level=logging.WARNING)  # EIO served: a log line each
    with ctx.open() as repo:
        sid = ctx.snapshot(repo, args.snapshot)
        snap = repo.load_snapshot(sid)
        with Mount(repo, snap, args.directory, browse=args.browse) as m:
            for note in m.notes:
                ctx.warn(note)
            if not args.quiet:
                names = ", ".join(f"{name} ({render.size(size)})" for name, (_, size) in m.files.items())
                names += "".join(f", {folder}/ ({fs})" for folder, fs in m.mounted.items())
                ctx.err.print(
                    f"snapshot {sid[:12]} mounted on {args.directory}: {names}; "
                    f"`liferaft umount {args.directory}` or Ctrl-C ends it",
                    highlight=False,
                    markup=False,
                )
            try:
                m.wait()
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the way a mount is ended; leaving unmounts
                pass
    return 0


def run_umount(args: argparse.Namespace, ctx: Context) -> int:
    if not os.path.ismount(args.directory):
        raise MountFailed(f"nothing is mounted on {args.directory}")
    unmount(args.directory)
    return 0
