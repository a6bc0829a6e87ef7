"""The library imports on a platform without Linux's fcntl (Windows, for the VSS provider to
come): Linux-only modules are loaded only by the providers that need them. Not a skip: the
missing module is simulated here, on Linux."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
sys.modules["fcntl"] = None  # import fcntl now raises ImportError, as on Windows
import liferaft
import liferaft.cli.main
from liferaft.source import providers
assert "liferaft.source.linux.freeze" not in sys.modules, "a Linux-only module was imported"
assert "liferaft.source.providers.freeze_trace" not in sys.modules
print(sorted(providers.names()))
try:
    providers.get("freeze_trace")
except ImportError:
    print("freeze_trace needs fcntl")
"""


def test_import_liferaft_without_fcntl() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['freeze_trace', 'plain', 'reflink']", "freeze_trace needs fcntl"]


def test_a_linux_ioctl_without_fcntl_is_not_supported_here() -> None:
    probe = """
import errno, sys
sys.modules["fcntl"] = None
from liferaft.source.linux import kernel
try:
    kernel.block_size(0)
except OSError as exc:
    print(exc.errno == errno.ENOSYS)
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr
