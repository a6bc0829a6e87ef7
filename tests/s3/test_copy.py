"""copy: a local repository's snapshots into S3 (and back), only what the destination lacks;
the copy restores on its own, with its own password, after the source is gone."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.s3.test_s3_repository import disk


def test_copy_local_to_s3_then_restore_from_the_copy_alone(
    bucket: str, cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, offsite = tmp_path / "local", f"s3://{bucket}/offsite"
    assert cli("init", repo=local).code == 0
    monkeypatch.setenv("LIFERAFT_TO_PASSWORD", "another password")
    assert cli("init", repo=offsite, password="another password").code == 0
    src = disk(tmp_path / "disk.img", 24, 3)
    assert cli("backup", "-q", str(src), repo=local).code == 0
    day0 = src.read_bytes()
    with open(src, "r+b") as f:
        f.seek(2 << 20)
        f.write(os.urandom(1 << 20))
    assert cli("backup", "-q", str(src), repo=local).code == 0
    first = cli("copy", "--json", "-q", "--to", offsite, repo=local)
    assert first.code == 0, first.err
    done = json.loads(first.out)
    assert len(done["copied"]) == 2 and done["skipped"] == 0
    assert done["new_bytes"] < 2 * len(day0)  # the second snapshot's unchanged chunks were not stored again
    again = json.loads(cli("copy", "--json", "-q", "--to", offsite, repo=local).out)
    assert again["copied"] == [] and again["skipped"] == 2  # run again: nothing new to copy
    shutil.rmtree(local)  # the site burned down
    listed = json.loads(cli("snapshots", "--json", repo=offsite, password="another password").out)
    assert [s["source"] for s in listed] == [str(src), str(src)]
    for snapshot, want in ((listed[0]["id"], day0), ("latest", src.read_bytes())):
        out = tmp_path / "out.img"
        r = cli("restore", "-q", "--force", snapshot, str(out), "--verify", repo=offsite, password="another password")
        assert r.code == 0, r.err
        assert out.read_bytes() == want
    assert cli("verify", "-q", "--read-data", repo=offsite, password="another password").code == 0
    back = tmp_path / "back"  # and back from S3 into a new local repository
    assert cli("init", repo=back, password="another password").code == 0
    monkeypatch.setenv("LIFERAFT_TO_PASSWORD", "another password")
    home = cli("copy", "-q", "--to", str(back), repo=offsite, password="another password")
    assert home.code == 0, home.err
    assert cli("verify", "-q", "--read-data", repo=back, password="another password").code == 0
