"""liferaft boot and drill, on real QEMU (software emulation here) with liferaft's own test guest
(tests/guest/build): a snapshot of the guest boots straight from the repository to its login
prompt; one whose /sbin/init was deleted before the backup fails its drill with the console's
tail stored; nothing of the guest's writes reaches the repository, and nothing is left mounted
or running."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from liferaft.format.layout import DiskLayout, PartitionRecord
from liferaft.ops.boot import firmware_for
from tests.conftest import Result, sh

ROOT = Path(__file__).resolve().parents[2]
GUEST_CACHE = Path("/var/cache/liferaft-guest")
MACHINE = ["--memory", "256M", "--timeout", "600"]  # a bound: the guest shows its prompt in seconds


@pytest.fixture(scope="session")
def guest_disk() -> Path:
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("QEMU is not installed (scripts/check installs it)")
    subprocess.run([str(ROOT / "tests/guest/build")], check=True, capture_output=True)
    return GUEST_CACHE / "disk.img"


def objects(repo: Path) -> set[str]:
    return {str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file() and "drills" not in p.parts}


def leftovers() -> set[str]:
    """liferaft's FUSE mounts, QEMU processes and overlay folders on this machine."""
    mounts = {line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if "fuse.liferaft" in line}
    found = subprocess.run(["pgrep", "-f", "qemu-system-x86_64 .*liferaft-"], capture_output=True, text=True)
    return mounts | set(found.stdout.split()) | {str(p) for p in Path("/var/tmp").glob("liferaft-boot-*")}


@pytest.fixture
def nothing_left() -> Callable[[], None]:
    """nothing_left(): what the test started is gone (what else runs on the machine is let be)."""
    before = leftovers()

    def check() -> None:
        left = leftovers() - before
        assert not left, f"left behind: {sorted(left)}"

    return check


def test_a_drill_boots_the_guest_to_its_login_prompt_and_a_broken_one_fails(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, guest_disk: Path,
    nothing_left: Callable[[], None],
) -> None:  # fmt: skip
    good = tmp_path / "guest.img"
    sh("cp", "--sparse=always", str(guest_disk), str(good))
    assert cli("backup", str(good), repo=repo).code == 0
    before = objects(repo)
    r = cli("drill", "latest", *MACHINE, repo=repo)
    assert r.code == 0, r.out + r.err
    assert "pass: snapshot" in r.out and "(bios, " in r.out
    assert objects(repo) == before  # the guest wrote to its overlay only
    nothing_left()
    # the same guest with its init deleted before the backup: the kernel panics
    broken = tmp_path / "broken.img"
    sh("cp", "--sparse=always", str(guest_disk), str(broken))
    sh("debugfs", "-w", "-R", "rm /sbin/init", f"{broken}?offset=1048576")
    assert cli("backup", str(broken), repo=repo).code == 0
    r = cli("drill", "--untested", *MACHINE, "--json", repo=repo)  # only the broken one has no verdict
    assert r.code == 72, r.out + r.err
    (verdict,) = json.loads(r.out)
    assert not verdict["passed"] and "can't execute '/sbin/init'" in verdict["console_tail"]
    shown = json.loads(cli("show", verdict["snapshot_id"], "--json", repo=repo).out)
    assert shown["drill"]["passed"] is False and "Kernel panic" in shown["drill"]["console_tail"]
    listed = json.loads(cli("snapshots", "--json", repo=repo).out)
    rows = {s["source"]: s["drill"] for s in listed}
    rows_ids = {s["source"]: s["id"] for s in listed}
    assert rows[str(good)]["passed"] is True and rows[str(broken)]["passed"] is False
    assert "FAIL" in cli("snapshots", repo=repo).out
    r = cli("drill", "--untested", *MACHINE, repo=repo)
    assert r.code == 0 and "every snapshot has a verdict" in r.err
    nothing_left()
    # a forgotten snapshot's verdict goes with it
    assert cli("forget", verdict["snapshot_id"], "--prune", repo=repo).code == 0
    assert [p.name.split(".")[0] for p in (repo / "drills").iterdir()] == [rows_ids[str(good)]]


def test_boot_runs_the_guest_with_its_console_in_a_file(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, guest_disk: Path,
    nothing_left: Callable[[], None],
) -> None:  # fmt: skip
    broken = tmp_path / "broken.img"  # a guest that stops by itself (panic=-1 and -no-reboot)
    sh("cp", "--sparse=always", str(guest_disk), str(broken))
    sh("debugfs", "-w", "-R", "rm /sbin/init", f"{broken}?offset=1048576")
    assert cli("backup", str(broken), repo=repo).code == 0
    console = tmp_path / "console.log"
    r = cli("boot", "latest", "--memory", "256M", "--console", str(console), repo=repo)
    assert r.code == 0, r.err
    assert "Kernel panic" in console.read_text(errors="replace")
    nothing_left()


def uefi_disk(path: Path, guest: Path) -> Path:
    """The test guest made UEFI-only: no MBR boot code; an EFI system partition (FAT16, mtools)
    whose startup.nsh has OVMF's shell start the kernel (its EFI stub), the guest's root after it."""
    cache = guest.parent
    sh("truncate", "-s", "300M", str(path))
    table = "label: gpt\nsize=32M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype=linux\n"
    subprocess.run(["sfdisk", "-q", str(path)], input=table, text=True, check=True)
    sh("dd", f"if={guest}", f"of={path}", "bs=1M", "skip=1", "seek=33", "count=254", "conv=notrunc,sparse", "status=none")
    esp = path.with_suffix(".esp")
    sh("mkfs.fat", "-F", "16", "-C", str(esp), "32768")
    nsh = path.with_suffix(".nsh")
    nsh.write_text("fs0:\\vmlinuz console=ttyS0 root=/dev/vda2 initrd=\\initrd.gz panic=-1 quiet loglevel=3\r\n")
    for src, name in ((cache / "vmlinuz", "vmlinuz"), (cache / "initrd.gz", "initrd.gz"), (nsh, "startup.nsh")):
        subprocess.run(["mcopy", "-i", str(esp), str(src), f"::/{name}"], check=True, env={"MTOOLS_SKIP_CHECK": "1"})
    sh("dd", f"if={esp}", f"of={path}", "bs=1M", "seek=1", "conv=notrunc", "status=none")
    return path


def test_a_disk_with_only_an_efi_partition_boots_by_uefi(
    cli: Callable[..., Result], repo: Path, tmp_path: Path, guest_disk: Path,
    nothing_left: Callable[[], None],
) -> None:  # fmt: skip
    disk = uefi_disk(tmp_path / "uefi.img", guest_disk)
    assert cli("backup", str(disk), repo=repo).code == 0
    r = cli("drill", "latest", *MACHINE, repo=repo)
    assert r.code == 0, r.out + r.err
    assert "(uefi, " in r.out
    tail = json.loads(cli("show", "latest", "--json", repo=repo).out)["drill"]["console_tail"]
    assert "Shell>" in tail and "\x1b[" not in tail  # OVMF's shell ran startup.nsh; its colours are gone
    nothing_left()


def test_the_firmware_follows_the_disk() -> None:
    esp = DiskLayout(table="gpt", partitions=(PartitionRecord(1, 1 << 20, 100 << 20, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),))
    linux = DiskLayout(table="gpt", partitions=(PartitionRecord(1, 1 << 20, 100 << 20, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),))
    boot_code = b"\xeb\x63\x90" + bytes(509)
    assert firmware_for(bytes(512), esp) == "uefi"
    assert firmware_for(boot_code, esp) == "bios"  # a BIOS bootloader is there too
    assert firmware_for(bytes(512), linux) == "bios"
    assert firmware_for(bytes(512), linux, "uefi") == "uefi"
