"""``liferaft init``: create a repository."""

from __future__ import annotations

import argparse
from typing import Any

from liferaft.cli import render
from liferaft.cli.context import Context
from liferaft.ops.repository import init_repository, open_default


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a repository")
    p.add_argument("--chunk-size", default="1M", help="chunk size, a power of two from 256K to 8M (default 1M)")
    p.add_argument("--compression", type=int, default=3, metavar="LEVEL", help="zstd level (default 3)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    chunk = render.parse_size(args.chunk_size)
    if ctx.location:
        repo = init_repository(
            ctx.location, ctx.require_password("new repository password: ", confirm=True), chunk, args.compression
        )
    else:
        if (ctx.defaults.repository / "config").exists():
            from liferaft.errors import RepositoryExists

            raise RepositoryExists(location=str(ctx.defaults.repository))
        repo, _ = open_default(ctx.defaults, ctx.password("new repository password: ", confirm=True), create=True)
    result: dict[str, str | int] = {
        "location": repo.store.location,
        "id": repo.config.repo_id.hex(),
        "chunk_size": repo.config.chunk_size,
    }
    if ctx.json:
        render.print_json(result)
    else:
        ctx.out.print(
            f"created repository {str(result['id'])[:12]} at {result['location']} "
            f"(chunk size {render.size(repo.config.chunk_size)})"
        )
    return 0
