"""Boot a snapshot in QEMU, straight from the repository, and drill it (docs/design.md, "Boot and
drills").

The snapshot is mounted (``ops/mount.py``) and QEMU boots a qcow2 overlay whose backing file is
the mount's ``disk.img``: the guest's writes go to the overlay, thrown away afterwards, and nothing
is written to the repository. Firmware: BIOS where the disk has boot code in its MBR (a BIOS
bootloader, also GRUB's on a GPT disk), UEFI (OVMF) where it has none but an EFI system
partition. KVM where it can run a guest (kvm_intel or kvm_amd loaded), software emulation
otherwise. The network is off unless asked for.

A drill boots headless with the serial console in a file and waits for a regular expression on
it (a login prompt by default) within a timeout; the verdict (pass or fail, the time to the signal,
the console's tail) is stored in the repository (``repo/drills.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from liferaft.errors import BootFailed
from liferaft.format import SnapshotId
from liferaft.format.drill import DrillVerdict
from liferaft.format.layout import DiskLayout
from liferaft.format.snapshot import Snapshot
from liferaft.ops.mount import Mount
from liferaft.repo.repository import Repository

ESP_TYPES = {"c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "0xef"}
OVMF = (
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
)
DEFAULT_EXPECT = r"login: ?$"
"""A login prompt at the end of a console line."""
TAIL_LINES = 40
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
"""A terminal control sequence (ECMA-48 CSI)."""
POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class BootOptions:
    memory_mib: int = 1024
    cpus: int = 1
    firmware: str = "auto"
    """'auto', 'bios' or 'uefi'."""
    accel: str = "auto"
    """'auto', 'kvm' or 'tcg'."""
    network: bool = False
    bus: str = "virtio"
    """How the disk is attached: 'virtio', 'sata' or 'ide'."""


def accelerator(wanted: str = "auto") -> str:
    """kvm where this machine can run a guest with it (a hardware KVM module loaded), else tcg."""
    if wanted != "auto":
        return wanted
    hardware = any(Path("/sys/module", m).exists() for m in ("kvm_intel", "kvm_amd"))
    return "kvm" if hardware and os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


def firmware_for(mbr: bytes, disk: DiskLayout, wanted: str = "auto") -> str:
    """'bios' where the first 440 bytes hold boot code, else 'uefi' where the disk has an EFI
    system partition, else 'bios'."""
    if wanted != "auto":
        return wanted
    if any(mbr[:440]):
        return "bios"
    return "uefi" if any(p.type.lower() in ESP_TYPES for p in disk.partitions) else "bios"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BootFailed(f"{name} is not installed (apt-get install qemu-system-x86 qemu-utils)")
    return path


@dataclass
class Guest:
    """A running QEMU of a snapshot: its process and where its console goes."""

    process: subprocess.Popen[bytes]
    console: Path | None
    messages: Path
    """QEMU's own messages (its standard error)."""
    firmware: str
    accel: str
    started: float


@contextmanager
def booted(
    repo: Repository, snap: Snapshot, options: BootOptions, console: Path | None = None, interactive: bool = False
) -> Iterator[Guest]:  # fmt: skip
    """Boot snap; console: a file for the serial console (None: this process's terminal). On
    leaving, QEMU is stopped, the overlay deleted and the snapshot unmounted."""
    qemu, qemu_img = _tool("qemu-system-x86_64"), _tool("qemu-img")
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="liferaft-boot-", dir="/var/tmp")))
        (work / "image").mkdir()
        mount = stack.enter_context(Mount(repo, snap, work / "image"))
        firmware = firmware_for(mount.image.read_at(0, 512), snap.disk, options.firmware)
        accel = accelerator(options.accel)
        overlay = work / "overlay.qcow2"
        made = subprocess.run(
            [qemu_img, "create", "-q", "-f", "qcow2", "-b", str(mount.directory / "disk.img"), "-F", "raw", str(overlay)],
            capture_output=True, text=True,
        )  # fmt: skip
        if made.returncode != 0:
            raise BootFailed(f"qemu-img could not make the overlay: {made.stderr.strip()}")
        cmd = [qemu, "-accel", accel, "-m", str(options.memory_mib), "-smp", str(options.cpus), "-nodefaults",
               "-no-user-config", "-display", "none", "-no-reboot", "-name", f"liferaft-{snap.hostname}"]  # fmt: skip
        cmd += ["-machine", "q35" if firmware == "uefi" else "pc"]
        if firmware == "uefi":
            code, vars_ = next(((c, v) for c, v in OVMF if Path(c).exists()), (None, None))
            if code is None or vars_ is None:
                raise BootFailed("UEFI firmware (OVMF) is not installed (apt-get install ovmf), or boot with --firmware bios")
            shutil.copyfile(vars_, work / "vars.fd")
            cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={code}"]
            cmd += ["-drive", f"if=pflash,format=raw,file={work / 'vars.fd'}"]
        bus = {"virtio": "if=virtio", "ide": "if=ide", "sata": "if=none,id=disk0"}[options.bus]
        cmd += ["-drive", f"file={overlay},format=qcow2,{bus}"]
        if options.bus == "sata":
            cmd += ["-device", "ahci,id=ahci", "-device", "ide-hd,drive=disk0,bus=ahci.0"]
        cmd += ["-nic", "user,model=virtio-net-pci" if options.network else "none"]
        if console is not None:
            cmd += ["-serial", f"file:{console}"]
        else:
            cmd += ["-serial", "mon:stdio" if interactive else "stdio"]
        messages = work / "qemu.log"
        with open(messages, "wb") as err:  # a file, not a pipe: a pipe nobody reads fills and stops QEMU
            process = subprocess.Popen(cmd, stdin=None if interactive else subprocess.DEVNULL, stderr=err)
        stack.callback(_stop, process)
        yield Guest(process, console, messages, firmware, accel, time.monotonic())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def drill(
    repo: Repository, sid: SnapshotId, options: BootOptions, expect: str = DEFAULT_EXPECT, timeout_s: float = 600.0,
    console: Path | None = None,
) -> DrillVerdict:  # fmt: skip
    """Boot the snapshot headless, wait for expect on its console within timeout_s, store the
    verdict and return it."""
    pattern = re.compile(expect, re.MULTILINE)
    snap = repo.load_snapshot(sid)
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with tempfile.TemporaryDirectory(prefix="liferaft-drill-") as tmp:
        log = console or Path(tmp) / "console.log"
        log.write_bytes(b"")
        with booted(repo, snap, options, log) as guest:
            deadline = guest.started + timeout_s
            why = ""
            while not why:
                text = log.read_text(errors="replace")
                if pattern.search(text.replace("\r", "")):
                    why = "signal seen"
                elif guest.process.poll() is not None:
                    err = guest.messages.read_text(errors="replace").strip()
                    why = f"the guest stopped (QEMU exit {guest.process.returncode}{': ' + err if err else ''})"
                elif time.monotonic() > deadline:
                    why = f"timed out after {timeout_s:g} s"
                else:
                    time.sleep(POLL_S)
            seconds = round(time.monotonic() - guest.started, 2)
            firmware, accel = guest.firmware, guest.accel
        text = ANSI.sub("", log.read_text(errors="replace").replace("\r", ""))  # firmware menus colour their text
    tail = "\n".join(text.rstrip("\n").splitlines()[-TAIL_LINES:])
    verdict = DrillVerdict(sid, when, why == "signal seen", seconds, expect, why, firmware, accel, tail)
    repo.record_drill(verdict)
    return verdict
