"""``liferaft init``: create a repository."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.cmd_settings import add_settings_options, settings_from, show_settings
from liferaft.cli.context import Context, given_password
from liferaft.errors import UsageError
from liferaft.format.settings import RepoSettings
from liferaft.ops.repository import init_repository, open_default


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a repository")
    p.add_argument("--chunk-size", default="1M", help="chunk size, a power of two from 256K to 8M (default 1M)")
    p.add_argument("--compression", type=int, default=3, metavar="LEVEL", help="zstd level (default 3)")
    add_settings_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    chunk = render.parse_size(args.chunk_size)
    settings = settings_from(args, RepoSettings())
    if not ctx.default_named:
        assert ctx.location is not None
        repo = init_repository(
            ctx.location, ctx.require_password("new repository password: ", new=True), chunk, args.compression,
            settings=settings,
        )  # fmt: skip
    else:  # the default repository: a generated password file unless one is given
        if (ctx.defaults.repository / "config").exists():
            from liferaft.errors import RepositoryExists

            raise RepositoryExists(location=str(ctx.defaults.repository))
        given = given_password(args.password_file, "LIFERAFT")
        if given is not None and not given:
            raise UsageError("an empty password is refused: give none, and one is generated into a password file")
        repo, _ = open_default(ctx.defaults, given, create=True, settings=settings)
        ctx.announce_default(given is not None)
    result: dict[str, str | int | float] = {
        "location": repo.store.location,
        "id": repo.config.repo_id.hex(),
        "chunk_size": repo.config.chunk_size,
        "lock_days": settings.lock_s / 86400,
    }
    if ctx.json:
        render.print_json(result)
    else:
        ctx.out.print(
            f"created repository {str(result['id'])[:12]} at {result['location']} "
            f"(chunk size {render.size(repo.config.chunk_size)})"
        )
        if settings != RepoSettings():
            show_settings(ctx, settings)
    return 0
