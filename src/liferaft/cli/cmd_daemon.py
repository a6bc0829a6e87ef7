"""``liferaft daemon``: run the jobs of a config on their schedules; ``liferaft service install``:
the systemd unit that runs it."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from liferaft.cli.context import Context
from liferaft.ops.jobconfig import DEFAULT_PATH, load

UNIT = """\
# written by 'liferaft service install'
[Unit]
Description=liferaft backup daemon ({config})
After=network-online.target local-fs.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={python} -m liferaft daemon --config {config}
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=300
Restart=on-failure
RestartSec=30
# SIGTERM to the daemon alone: it stops each running backup cleanly, then exits
KillMode=mixed
TimeoutStopSec=180

[Install]
WantedBy=multi-user.target
"""


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", type=Path, default=DEFAULT_PATH, help=f"the config file (default {DEFAULT_PATH})")


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("daemon", parents=[common], help="run the jobs of the config on their schedules (until SIGTERM)")
    config_arg(p)
    p.set_defaults(run=run)
    s = sub.add_parser("service", parents=[common], help="install the systemd unit that runs the daemon")
    ss = s.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    i = ss.add_parser("install", parents=[common], help="write and enable liferaft.service")
    config_arg(i)
    i.add_argument(
        "--unit-dir", type=Path, default=Path("/etc/systemd/system"), help="where units go (default /etc/systemd/system)"
    )
    i.add_argument("--no-enable", action="store_true", help="write the unit, do not enable it")
    i.set_defaults(run=install)


def run(args: argparse.Namespace, ctx: Context) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s liferaft daemon: %(levelname)s %(message)s")
    from liferaft.ops.daemon import Daemon  # Linux-only (fcntl): `import liferaft.cli.main` works without it

    return Daemon(args.config).run()


def install(args: argparse.Namespace, ctx: Context) -> int:
    config = args.config.resolve()
    load(config)  # a unit that runs a wrong config would only fail later, in the journal
    unit = args.unit_dir / "liferaft.service"
    args.unit_dir.mkdir(parents=True, exist_ok=True)
    text = UNIT.format(python=sys.executable, config=config)
    unit.write_text(text)
    ctx.out.print(f"wrote {unit}:\n{text}", highlight=False, markup=False)
    if args.no_enable:
        return 0
    if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", "liferaft.service"], check=True)
        ctx.out.print("enabled and started liferaft.service (systemctl status liferaft)", highlight=False)
    else:
        wants = args.unit_dir / "multi-user.target.wants"
        wants.mkdir(exist_ok=True)
        link = wants / unit.name
        if not link.exists():
            link.symlink_to(unit)
        ctx.out.print(
            f"enabled ({link}); systemd does not run here, so it starts at the next boot under systemd", highlight=False
        )
    return 0
