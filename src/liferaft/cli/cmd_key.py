"""``liferaft key add|list|remove``: the passwords that open the repository."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context, read_password
from liferaft.errors import NoPassword


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("key", parents=[common], help="manage the repository's passwords")
    ks = p.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    a = ks.add_parser("add", parents=[common], help="add a password")
    a.add_argument("--new-password-file", metavar="FILE", help="the new password (else $LIFERAFT_NEW_PASSWORD, else a prompt)")
    a.add_argument("--label", default="", help="a note to tell keys apart")
    a.add_argument("--json", action="store_true")
    a.set_defaults(run=run_add)
    lp = ks.add_parser("list", parents=[common], help="list the keys")
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(run=run_list)
    r = ks.add_parser("remove", parents=[common], help="remove a key (not the one in use, not the last)")
    r.add_argument("key_id")
    r.set_defaults(run=run_remove)


def _new_password(args: argparse.Namespace) -> bytes:
    pw = read_password(args.new_password_file, "LIFERAFT_NEW", "new password: ", new=True)
    if pw is None:
        raise NoPassword("for the new key: use --new-password-file or LIFERAFT_NEW_PASSWORD")
    return pw


def run_add(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        key_id = repo.add_key(_new_password(args), args.label)
    if ctx.json:
        render.print_json({"id": key_id})
    else:
        ctx.out.print(f"added key {key_id}")
    return 0


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        keys = repo.list_keys()
    if ctx.json:
        render.print_json([{"id": k.key_id, "label": k.label, "created": k.created, "current": k.current} for k in keys])
        return 0
    render.table(
        ctx.out, ["", "id", "created", "label"], [["*" if k.current else "", k.key_id, k.created, k.label] for k in keys]
    )
    return 0


def run_remove(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open() as repo:
        repo.remove_key(args.key_id)
    ctx.out.print(f"removed key {args.key_id}")
    return 0
