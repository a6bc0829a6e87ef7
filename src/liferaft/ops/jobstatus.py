"""``liferaft status`` and ``history``: what the daemon did and will do, from its state database
(no repository is opened, so it answers at once, also while a backup runs)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from liferaft.ops.jobconfig import Config
from liferaft.ops.jobstate import JobState, Run


@dataclass(frozen=True)
class JobStatus:
    job: str
    source: str
    repository: str
    last_run: dict[str, Any] | None
    next_run: float | None
    last_success: float | None
    rpo_age: float | None
    rpo: float | None
    rpo_ok: bool
    failing: bool
    """Its last backup, verify or drill failed."""
    failures: int
    tracking: str | None
    last_verify: dict[str, Any] | None
    last_drill: dict[str, Any] | None
    repository_free: int | None
    """Free bytes on a local repository's filesystem (None for S3)."""

    @property
    def healthy(self) -> bool:
        return self.rpo_ok and not self.failing


@dataclass(frozen=True)
class DaemonStatus:
    pid: int | None
    running: bool
    heartbeat: float | None
    jobs: list[JobStatus]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "jobs": [{**asdict(j), "healthy": j.healthy} for j in self.jobs]}


def _brief(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id, "result": run.result, "started": run.started, "ended": run.ended, "duration": run.duration,
        "exit_code": run.exit_code, "new_bytes": run.new_bytes, "stored_bytes": run.stored_bytes,
        "snapshot": run.snapshot, "message": run.message,
    }  # fmt: skip


def status(config: Config) -> DaemonStatus:
    state = JobState(config.state_dir / "state.db")
    try:
        now = time.time()
        daemon = json.loads(state.fact("daemon") or "{}")
        beat = state.fact("heartbeat")
        pid = daemon.get("pid")
        jobs = []
        for job in config.jobs.values():
            plan = state.plan(job.name, "backup")
            last, ok = state.last(job.name, "backup"), state.last(job.name, "backup", "ok")
            age = state.rpo_age(job.name, now)
            tracker = json.loads(state.fact(f"tracker:{job.name}") or "null")
            location = config.repositories[job.repository].location
            free = None
            if "://" not in location or location.startswith("file://"):
                try:
                    free = shutil.disk_usage(location.removeprefix("file://")).free
                except OSError:
                    free = None
            verify, drill = state.last(job.name, "verify"), state.last(job.name, "drill")
            jobs.append(JobStatus(
                job=job.name, source=job.source, repository=job.repository, last_run=_brief(last), next_run=plan.next_run,
                last_success=ok.ended if ok else None, rpo_age=age, rpo=job.rpo,
                rpo_ok=job.rpo is None or (age is not None and age <= job.rpo),
                failing=state.failing(job.name), failures=plan.failures,
                tracking=(tracker or {}).get("state") if job.track else None,
                last_verify=_brief(verify), last_drill=_brief(drill),
                repository_free=free,
            ))  # fmt: skip
        return DaemonStatus(pid, bool(pid) and psutil.pid_exists(pid), float(beat) if beat else None, jobs)
    finally:
        state.close()


def history(config: Config, job: str | None, limit: int) -> list[Run]:
    state = JobState(config.state_dir / "state.db")
    try:
        return state.runs(job, limit=limit)
    finally:
        state.close()
