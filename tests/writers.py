"""Writers that keep a filesystem busy during live backups, and the checks of what they wrote.

``python3 tests/writers.py KIND DIR JOURNAL [BYTES_PER_S]`` runs until SIGTERM
(``python3 tests/writers.py flood INSTANCE SECONDS`` overruns a trace instance instead). Each
kind writes checksummed data into DIR and appends ``<sequence> <wall time> <bytes>`` to JOURNAL (on
another filesystem) once a write is durable, so a check knows what was committed before a freeze:
- ``sqlite``: a WAL-mode database, one row per transaction (synchronous=FULL);
- ``log``: an append-only log, one record per write, each fsync'ed;
- ``overwrite``: random runs of 16 4 KiB blocks of a 32 MiB file rewritten in place (no fsync;
  each block carries its own checksum, so a torn block shows).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

BLOCK = 4096
BIG_BLOCKS = 8192  # 32 MiB
RUN = 16  # blocks per overwrite
_HEAD = struct.Struct("<QQ32s")  # block number, generation, sha256 of the rest


def _block(number: int, generation: int, rng: random.Random) -> bytes:
    rest = rng.randbytes(BLOCK - _HEAD.size)
    return _HEAD.pack(number, generation, hashlib.sha256(rest).digest()) + rest


def run(kind: str, where: Path, journal: Path, rate: float) -> None:
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    rng = random.Random(os.getpid())
    out = journal.open("a", buffering=1)
    seq = 0
    started = time.monotonic()
    written = 0
    if kind == "sqlite":
        db = sqlite3.connect(where / "app.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, payload BLOB, sum TEXT)")
    elif kind == "log":
        fd = os.open(where / "append.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    else:
        big = where / "big.bin"
        with big.open("wb") as f:
            for n in range(BIG_BLOCKS):
                f.write(_block(n, 0, rng))
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(big, os.O_WRONLY)
    print("ready", file=out)
    while not stop:
        seq += 1
        was = written
        if kind == "sqlite":
            payload = rng.randbytes(rng.randrange(512, 8192))
            db.execute("INSERT INTO rows VALUES (?, ?, ?)", (seq, payload, hashlib.sha256(payload).hexdigest()))
            written += len(payload)
        elif kind == "log":
            body = rng.randbytes(rng.randrange(16, 512)).hex()
            os.write(fd, f"{seq} {body} {hashlib.sha256(body.encode()).hexdigest()}\n".encode())
            os.fsync(fd)
            written += len(body)
        else:
            n = rng.randrange(BIG_BLOCKS // RUN) * RUN
            os.pwrite(fd, b"".join(_block(n + k, seq, rng) for k in range(RUN)), n * BLOCK)
            written += RUN * BLOCK
        print(f"{seq} {time.time():.6f} {written - was}", file=out)
        ahead = written / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
        elif ahead < -1:  # stopped or starved for a while: go on at the rate, without a burst to catch up
            started, written = time.monotonic(), 0


def flood_trace(instance: Path, seconds: float = 0.3) -> None:
    """Write markers into a tracefs instance far faster than any reader drains them: its ring
    buffer overruns, as under an extreme write load. It runs in a process of its own, so that no
    other thread holding the GIL slows it down."""
    subprocess.run([sys.executable, __file__, "flood", str(instance), str(seconds)], check=True, timeout=60)


def _flood(instance: Path, seconds: float) -> None:
    """The kernel refuses markers (EBADF) while the instance is being set up (its buffer
    resized), so the flood lasts `seconds` from the first marker that gets in, and gives up only
    when the instance is gone."""
    line, end = b"flood " + b"x" * 1000, None
    try:
        fd = os.open(instance / "trace_marker", os.O_WRONLY)
    except OSError:
        return
    try:
        give_up = time.monotonic() + 10
        while time.monotonic() < (end or give_up):
            try:
                os.write(fd, line)
            except OSError:
                if end is None and instance.exists():
                    continue
                return
            end = end or time.monotonic() + seconds
    finally:
        os.close(fd)


def committed_before(journal: Path, instant: float) -> int:
    """The highest sequence number durable before instant (wall clock)."""
    best = 0
    for line in journal.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and float(parts[1]) < instant:
            best = max(best, int(parts[0]))
    return best


def check_sqlite(db_path: Path, at_least: int) -> int:
    """integrity_check ok, rows 1..N all present with valid checksums, N >= at_least."""
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = []
    for rid, payload, digest in db.execute("SELECT id, payload, sum FROM rows ORDER BY id"):
        assert hashlib.sha256(payload).hexdigest() == digest, f"row {rid} is corrupt"
        ids.append(rid)
    db.close()
    assert ids == list(range(1, len(ids) + 1)), "rows are missing"
    assert len(ids) >= at_least, f"{len(ids)} rows, but {at_least} were committed before the freeze"
    return len(ids)


def check_log(path: Path, at_least: int, crashed: bool = False) -> int:
    """Every record whole and valid, numbered 1..N, N >= at_least. crashed: the image is what a
    power cut leaves, so the tail after the last fsync'ed record may be torn (a record's pages
    written back while it was being copied in): one last record beyond at_least is dropped when
    it is not whole."""
    data = path.read_bytes()
    lines = data.decode(errors="replace").splitlines()
    if crashed and lines and (not data.endswith(b"\n") or not _whole(lines[-1])):
        assert len(lines) > at_least, "a record fsync'ed before the clone is torn"
        lines = lines[:-1]
    else:
        assert data == b"" or data.endswith(b"\n"), "the last record is torn"
    seqs = []
    for line in lines:
        seq, body, digest = line.split(" ")
        assert hashlib.sha256(body.encode()).hexdigest() == digest, f"record {seq} is corrupt"
        seqs.append(int(seq))
    assert seqs == list(range(1, len(seqs) + 1)), "records are missing"
    assert len(seqs) >= at_least, f"{len(seqs)} records, but {at_least} were fsync'ed before the freeze"
    return len(seqs)


def _whole(line: str) -> bool:
    parts = line.split(" ")
    return len(parts) == 3 and hashlib.sha256(parts[1].encode()).hexdigest() == parts[2]


def check_blocks(path: Path) -> int:
    """Every 4 KiB block of the overwritten file is whole (its checksum holds); the highest
    generation seen."""
    data = path.read_bytes()
    assert len(data) == BIG_BLOCKS * BLOCK
    newest = 0
    for n in range(BIG_BLOCKS):
        number, generation, digest = _HEAD.unpack_from(data, n * BLOCK)
        rest = data[n * BLOCK + _HEAD.size : (n + 1) * BLOCK]
        assert number == n and hashlib.sha256(rest).digest() == digest, f"block {n} is torn"
        newest = max(newest, generation)
    return newest


if __name__ == "__main__" and sys.argv[1] == "flood":
    _flood(Path(sys.argv[2]), float(sys.argv[3]))
elif __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 2e6)
