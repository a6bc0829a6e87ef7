"""The freeze watchdog process (see source.freeze): ``python -I -S -B .../watchdog.py
MAX_SECONDS MOUNTPOINT...``, run by path and importing only the standard library, so that it is
up in tens of milliseconds and never imports (or writes a .pyc file) once filesystems are frozen.

Protocol on stdin/stdout: it prints ``ready`` once loaded; ``start`` begins the bound; ``thawed``
ends it (exit 0). When the bound passes, or stdin closes first (the parent died), it thaws every
mountpoint itself and exits 1.
"""

import fcntl
import os
import select
import sys
import time

FITHAW = 0xC0045878


def thaw(path: str) -> None:
    """FITHAW; a filesystem that is not frozen (EINVAL) is fine."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, FITHAW, 0)
    except OSError:
        pass
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    bound, mountpoints = float(argv[0]), argv[1:]
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    stdin = sys.stdin.buffer.fileno()
    buffered = b""

    def next_line(deadline: float | None) -> bytes | None:
        """The next line, b"" at end of file, None when the deadline passed."""
        nonlocal buffered
        while b"\n" not in buffered:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([stdin], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(stdin, 64)
            if not chunk:
                return b""
            buffered += chunk
        line, buffered = buffered.split(b"\n", 1)
        return line

    if next_line(None) != b"start":
        return 0  # the parent went away before freezing anything
    if next_line(time.monotonic() + bound) == b"thawed":
        return 0
    for mp in mountpoints:  # the bound passed, or the parent died: thaw now
        thaw(mp)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
