"""The daemon's small local state database (``STATE_DIR/state.db``, SQLite): every run with its
result, figures and log, and per job and task the last slot taken and the next run planned.

``status`` and ``history`` read it while the daemon writes (WAL mode); it holds no secret and no
repository data, so losing it loses only history: the daemon then runs each job once and goes on.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, kind TEXT NOT NULL, slot REAL, started REAL NOT NULL,
    ended REAL, result TEXT NOT NULL, exit_code INTEGER, new_bytes INTEGER, stored_bytes INTEGER,
    snapshot TEXT, message TEXT, log TEXT);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, kind, started);
CREATE TABLE IF NOT EXISTS plans (
    job TEXT NOT NULL, kind TEXT NOT NULL, last_slot REAL, next_run REAL, failures INTEGER NOT NULL DEFAULT 0,
    rpo_alerted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (job, kind));
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT);
"""
LOG_LIMIT = 64 * 1024
"""Of a run's output, the last this many characters are kept (the error is at the end)."""
KEEP_RUNS = 1000
"""Runs kept per job and kind (a job every 5 minutes: three and a half days of history; the
newest good one is always kept, for the RPO): the database stays small for years."""


@dataclass(frozen=True)
class Run:
    id: int
    job: str
    kind: str
    slot: float | None
    started: float
    ended: float | None
    result: str
    """running, ok, failed or cancelled."""
    exit_code: int | None
    new_bytes: int | None
    stored_bytes: int | None
    snapshot: str | None
    message: str | None
    log: str | None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@dataclass(frozen=True)
class Plan:
    job: str
    kind: str
    last_slot: float | None
    next_run: float | None
    failures: int
    rpo_alerted: bool


class JobState:
    def __init__(self, path: Path, keep_runs: int = KEEP_RUNS) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path, self.keep_runs = path, keep_runs
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, *args: object) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # --- runs
    def start(self, job: str, kind: str, slot: float | None) -> int:
        cur = self._run(
            "INSERT INTO runs (job, kind, slot, started, result) VALUES (?, ?, ?, ?, 'running')", job, kind, slot, time.time()
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish(
        self, run_id: int, result: str, exit_code: int | None, log: str, message: str | None = None,
        new_bytes: int | None = None, stored_bytes: int | None = None, snapshot: str | None = None,
    ) -> None:  # fmt: skip
        self._run(
            "UPDATE runs SET ended=?, result=?, exit_code=?, log=?, message=?, new_bytes=?, stored_bytes=?, snapshot=?"
            " WHERE id=?",
            time.time(), result, exit_code, log[-LOG_LIMIT:], message, new_bytes, stored_bytes, snapshot, run_id,
        )  # fmt: skip
        job, kind = self._run("SELECT job, kind FROM runs WHERE id=?", run_id).fetchone()
        self._run(  # past keep_runs of this job and kind, the oldest go; the newest good one stays, for the RPO
            "DELETE FROM runs WHERE job=?1 AND kind=?2"
            " AND id <= (SELECT id FROM runs WHERE job=?1 AND kind=?2 ORDER BY id DESC LIMIT 1 OFFSET ?3)"
            " AND id IS NOT (SELECT MAX(id) FROM runs WHERE job=?1 AND kind=?2 AND result='ok')",
            job, kind, self.keep_runs,
        )  # fmt: skip

    def abandon_running(self) -> None:
        """Runs a previous daemon left 'running' (killed): they ended, unfinished."""
        self._run(
            "UPDATE runs SET result='cancelled', ended=started, message='the daemon stopped during the run'"
            " WHERE result='running'"
        )

    def runs(self, job: str | None = None, kind: str | None = None, limit: int = 50) -> list[Run]:
        sql, args = "SELECT * FROM runs WHERE 1=1", list[object]()
        if job:
            sql, args = sql + " AND job=?", [*args, job]
        if kind:
            sql, args = sql + " AND kind=?", [*args, kind]
        rows = self._run(sql + " ORDER BY id DESC LIMIT ?", *args, limit).fetchall()
        return [Run(*r) for r in rows]

    def last(self, job: str, kind: str, result: str | None = None) -> Run | None:
        sql = "SELECT * FROM runs WHERE job=? AND kind=? AND result != 'running'"
        args: list[object] = [job, kind]
        if result:
            sql, args = sql + " AND result=?", [*args, result]
        row = self._run(sql + " ORDER BY id DESC LIMIT 1", *args).fetchone()
        return Run(*row) if row else None

    def rpo_age(self, job: str, now: float) -> float | None:
        """Age of the job's newest good backup; with none yet, the time since the daemon started."""
        ok = self.last(job, "backup", "ok")
        if ok and ok.ended:
            return now - ok.ended
        started = json.loads(self.fact("daemon") or "{}").get("started")
        return now - started if started else None

    def failing(self, job: str) -> bool:
        """The job's last backup, verify or drill failed (a damaged repository or a snapshot that
        does not boot is as much a failure as a backup that did not run)."""
        return any((r := self.last(job, kind)) is not None and r.result == "failed" for kind in ("backup", "verify", "drill"))

    # --- plans
    def plan(self, job: str, kind: str) -> Plan:
        row = self._run(
            "SELECT job, kind, last_slot, next_run, failures, rpo_alerted FROM plans WHERE job=? AND kind=?", job, kind
        ).fetchone()
        return Plan(row[0], row[1], row[2], row[3], row[4], bool(row[5])) if row else Plan(job, kind, None, None, 0, False)

    def set_plan(self, plan: Plan) -> None:
        self._run(
            "INSERT OR REPLACE INTO plans VALUES (?, ?, ?, ?, ?, ?)",
            plan.job, plan.kind, plan.last_slot, plan.next_run, plan.failures, int(plan.rpo_alerted),
        )  # fmt: skip

    # --- facts (the daemon's pid, heartbeat, tracker states)
    def set_fact(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO facts VALUES (?, ?)", key, value)

    def fact(self, key: str) -> str | None:
        row = self._run("SELECT value FROM facts WHERE key=?", key).fetchone()
        return row[0] if row else None
