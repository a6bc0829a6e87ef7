"""Repository settings through the CLI: set at init or later, honoured by gc, refused where the
store cannot do them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result, write_image


def test_settings_at_init_and_later_and_gc_honours_the_margin(cli: Callable[..., Result], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    made = cli("init", "--safety-margin", "2h", repo=repo)
    assert made.code == 0 and "2h" in made.out
    shown = cli("settings", "--json", repo=repo)
    assert json.loads(shown.out) == {"safety_margin": 7200.0, "lease_term": 600.0, "lock_days": 0.0}
    src = tmp_path / "disk.img"
    write_image(src, 4 << 20)
    assert cli("backup", str(src), repo=repo).code == 0
    assert cli("forget", "latest", repo=repo).code == 0
    held = cli("gc", "--json", repo=repo)  # the repository's 2h: the packs are too young to condemn
    assert json.loads(held.out)["condemned"] == 0 and json.loads(held.out)["margin"] == 7200.0
    assert cli("settings", "--safety-margin", "0s", "--lease-term", "5m", repo=repo).code == 0
    assert json.loads(cli("settings", "--json", repo=repo).out)["lease_term"] == 300.0
    first = json.loads(cli("gc", "--json", repo=repo).out)
    second = json.loads(cli("gc", "--json", repo=repo).out)
    assert first["condemned"] > 0 and second["deleted"] == first["condemned"]
    assert not [p for p in (repo / "packs").rglob("*") if p.is_file()]


def test_bad_settings_are_refused_with_what_is_wrong(cli: Callable[..., Result], repo: Path) -> None:
    lock = cli("settings", "--lock-days", "30", repo=repo)
    assert lock.code == 2 and "cannot lock objects" in lock.err and "S3" in lock.err
    short = cli("settings", "--lease-term", "1s", repo=repo)
    assert short.code == 2 and "the lease term is below 2 s" in short.err
    assert json.loads(cli("settings", "--json", repo=repo).out)["lease_term"] == 600.0  # nothing changed
    init = cli("init", "--lock-days", "1", repo=repo.parent / "other")
    assert init.code == 2 and "cannot lock objects" in init.err
    assert not (repo.parent / "other" / "config").exists()
