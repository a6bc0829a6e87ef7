"""What a new administrator reads on an 80-column rescue console: tables that drop or wrap
columns but never cut what must be typed, partition types by name, one unit system."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.progress import Progress

from liferaft.cli.render import _Done, _Rate
from tests.conftest import Result, write_image
from tests.disks import Part, make_disk


def test_tables_fit_80_columns_and_cut_nothing_a_user_types(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / "a-rather-long-folder-name" / "for-the-images-of-the-office-server"
    deep.mkdir(parents=True)
    src = deep / "disk-of-the-mail-server.img"
    write_image(src, 2 << 20)
    assert cli("backup", str(src), repo=repo).code == 0
    monkeypatch.setenv("COLUMNS", "80")
    listed = cli("snapshots", repo=repo).out
    lines = listed.splitlines()
    assert all(len(line) <= 80 for line in lines), listed
    short = lines[1].split()[0]
    assert len(short) >= 8 and json.loads(cli("show", short, "--json", repo=repo).out)["source"] == str(src)
    at = lines[0].index("source")
    source_cells = "".join(line[at:].split("  ")[0] for line in lines[1:] if not line.startswith("(") and "snapshot" not in line)
    assert source_cells == str(src), listed  # wrapped, every character there
    monkeypatch.delenv("COLUMNS")
    piped = cli("snapshots", repo=repo).out  # to a pipe or a file: no width, one line a snapshot
    assert str(src) in piped and "stored" in piped.splitlines()[0]


def test_partition_types_by_name(cli: Callable[..., Result], repo: Path, tmp_path: Path) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, "gpt", [Part("fat32", 40), Part("ext4", 40)], tmp_path)
    assert cli("backup", str(img), repo=repo).code == 0
    shown = cli("show", "latest", repo=repo).out
    assert "Microsoft basic data" in shown and "Linux filesystem" in shown, shown
    assert "ebd0a0a2" not in shown.lower() and "0fc63daf" not in shown.lower()


def test_the_progress_bar_speaks_the_units_of_the_summaries() -> None:
    progress = Progress()
    task = progress.add_task("backup", total=4 << 30)
    progress.update(task, completed=1 << 30)
    assert _Done().render(progress.tasks[0]).plain == "1.0 GiB of 4.0 GiB"
    progress.tasks[0].finished_speed = 250 * 2**20
    assert _Rate().render(progress.tasks[0]).plain == "250.0 MiB/s"
