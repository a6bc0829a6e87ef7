"""restore --files: files and folders out of a snapshot, without the disk, with their owner,
mode, times, extended attributes, ACLs, symlinks, hard links, FIFOs and holes, compared with
stat and getfattr; a path not in the snapshot is named (exit 73)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result, sh


def facts(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under root: its stat facts (type, mode, owner, times, size, links), its
    attributes and ACL as getfattr dumps them, and its content (or link target)."""
    found: dict[str, tuple[object, ...]] = {}
    for p in sorted([root, *root.rglob("*")]):
        st = p.lstat()
        attrs = subprocess.run(["getfattr", "-h", "-d", "-m", "-", "--absolute-names", str(p)], capture_output=True, text=True)
        names = "\n".join(line for line in attrs.stdout.splitlines()[1:] if line)
        body: object = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else None
        found[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size, st.st_nlink, names, body)
    return found


def test_files_come_back_with_their_metadata_and_holes(  # type: ignore[no-untyped-def]
    cli: Callable[..., Result], repo: Path, tmp_path: Path, loopdev, mount
) -> None:
    img = tmp_path / "fs.ext4"
    sh("truncate", "-s", "64M", str(img))
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", str(img))
    fs = mount(loopdev(img), tmp_path / "fs", "-o", "acl,user_xattr")
    app = fs / "srv" / "app"
    app.mkdir(parents=True)
    (app / "config.ini").write_text("[app]\nport = 8080\n")
    os.chown(app / "config.ini", 1234, 5678)
    os.chmod(app / "config.ini", 0o640)
    with open(app / "sparse.db", "wb") as f:  # 16 MiB with 8 KiB of data in it
        f.seek(8 << 20)
        f.write(os.urandom(8192))
        f.truncate(16 << 20)
    os.symlink("config.ini", app / "current.ini")
    os.link(app / "config.ini", app / "hardlink.ini")
    os.mkfifo(app / "pipe")
    sh("setfattr", "-n", "user.origin", "-v", "office-server", str(app / "config.ini"))
    sh("setfacl", "-m", "u:4321:r", str(app / "config.ini"))
    sh("setfacl", "-d", "-m", "g:99:rx", str(app))
    os.utime(app / "config.ini", ns=(1_700_000_000_123_456_789, 1_700_000_000_987_654_321))
    os.utime(app, ns=(1_600_000_000_000_000_001, 1_600_000_000_000_000_002))
    want = facts(app)
    sh("umount", str(fs))
    assert cli("backup", str(img), repo=repo).code == 0
    out = tmp_path / "out"
    r = cli("restore", "latest", "--files", "/srv/app", "--to", str(out), "--json", repo=repo)
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["files"] == 2 and result["links"] == 3 and result["warnings"] == []
    assert facts(out / "srv" / "app") == want
    assert os.stat(out / "srv/app/sparse.db").st_blocks * 512 < 1 << 20  # the hole stayed a hole
    assert str(tmp_path) not in Path("/proc/mounts").read_text()  # its mount (in TMPDIR, inside tmp_path) is gone
    # a path that is not there is named, and nothing is written
    r = cli("restore", "latest", "--files", "/srv/nothing-here", "--to", str(tmp_path / "out2"), repo=repo)
    assert r.code == 73 and "/srv/nothing-here" in r.err, r.err
    assert not (tmp_path / "out2" / "srv").exists()
    # restoring over what is there is refused
    r = cli("restore", "latest", "--files", "/srv/app", "--to", str(out), repo=repo)
    assert r.code == 44 and "exists" in r.err
