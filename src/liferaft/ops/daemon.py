"""``liferaft daemon``: run every job of a config on its schedule, for years, unattended.

Each run is a child ``liferaft`` process (backup, then forget by the job's retention, then a copy
offsite; a verify or drill on their own schedules) at low CPU and I/O priority: a run that
crashes, leaks or hangs takes no other job with it, and the daemon itself stays small. The daemon
keeps a change tracker (``liferaft track``) running for each job with ``track = true`` and
restarts it when it dies. A slot missed while the daemon was down runs once when it is back (not
once per missed slot); a failed run is retried with backoff; two runs never share a source; SIGTERM
stops the running children cleanly (each leaves its repository consistent) and exits; SIGHUP
reloads the config (a wrong one is logged and the old one kept).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from liferaft.errors import ConfigInvalid, DaemonRunning
from liferaft.ops import alerts
from liferaft.ops.jobconfig import Config, JobConfig, Limits, load
from liferaft.ops.jobstate import JobState, Plan
from liferaft.ops.schedule import Interval, Schedule
from liferaft.store.open import LIMIT_ENV

log = logging.getLogger("liferaft.daemon")
KINDS = ("backup", "verify", "drill")
TRACKER_RESTART_S = 5.0
MAX_BACKOFF_S = 6 * 3600.0
BEAT_S = 15.0
"""Between runs, how often the RPO is checked, the metrics renewed and the heartbeat written."""
STOP_GRACE_S = 120.0
"""After SIGTERM, how long a child may take to end cleanly before it is killed."""


def sd_notify(message: str) -> None:
    """systemd's readiness/watchdog protocol: one datagram to $NOTIFY_SOCKET (nothing without systemd).
    Our own six lines: the protocol is this one sendto, and its Python packages are unmaintained."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), addr)


def liferaft_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "liferaft", *args]


def _lower_priority(pid: int, limits: Limits) -> None:
    """The child's CPU and I/O priority, set once it runs (a preexec hook would run in a forked
    copy of this threaded process, where an import can deadlock)."""
    try:
        p = psutil.Process(pid)
        if limits.nice:
            p.nice(limits.nice)
        if limits.io_class == "idle":
            p.ionice(psutil.IOPRIO_CLASS_IDLE)
        elif limits.io_class == "best-effort":
            p.ionice(psutil.IOPRIO_CLASS_BE, 7)
    except psutil.Error:
        pass  # it ended already


def schedule_of(job: JobConfig, kind: str) -> Schedule | None:
    if kind == "backup":
        return job.schedule
    task = job.verify if kind == "verify" else job.drill
    return task.schedule if task else None


@dataclass
class _Step:
    ok: bool
    exit_code: int
    output: str
    result: dict[str, Any] | None


class Daemon:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.config: Config = load(config_path)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.ran = threading.Event()
        """A run ended: the RPO, the metrics and the heartbeat are renewed at once."""
        self.reload_wanted = False
        self.children: set[subprocess.Popen[str]] = set()
        self.children_lock = threading.Lock()
        self.busy: set[str] = set()
        self.running: dict[tuple[str, str], threading.Thread] = {}
        self.trackers: dict[str, subprocess.Popen[bytes]] = {}
        self.tracker_died: dict[str, float] = {}
        self._lockfile: int | None = None
        self.state: JobState

    # --- life cycle
    def _lock(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.config.state_dir / "daemon.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode().strip() or "?"
            os.close(fd)
            raise DaemonRunning(path=self.config_path, pid=pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lockfile = fd

    def run(self) -> int:
        self._lock()
        self.state = JobState(self.config.state_dir / "state.db")
        self.state.abandon_running()
        self.state.set_fact("daemon", json.dumps({"pid": os.getpid(), "started": time.time(), "config": str(self.config_path)}))
        self.metrics = alerts.Metrics(self.config.metrics_file, self.config.metrics_listen)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        watchdog_s = int(os.environ.get("WATCHDOG_USEC", "0")) / 2e6
        log.info("daemon started: %d jobs from %s", len(self.config.jobs), self.config_path)
        sd_notify("READY=1\nSTATUS=running")
        last_beat = 0.0
        try:
            while not self.stop.is_set():
                if self.reload_wanted:
                    self._reload()
                self._supervise_trackers()
                self._start_due()
                if time.monotonic() - last_beat >= BEAT_S or self.ran.is_set():  # idle: no write each second
                    self.ran.clear()
                    self._check_rpo()
                    self._update_metrics()
                    self.state.set_fact("heartbeat", str(time.time()))
                    last_beat = time.monotonic()
                if watchdog_s:
                    sd_notify("WATCHDOG=1")
                self.wake.wait(timeout=min(1.0, watchdog_s or 1.0))
                self.wake.clear()
        finally:
            sd_notify("STOPPING=1")
            self._shutdown()
        log.info("daemon stopped")
        return 0

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop.set()
        self.wake.set()

    def _on_hup(self, signum: int, frame: object) -> None:
        self.reload_wanted = True
        self.wake.set()

    def _reload(self) -> None:
        self.reload_wanted = False
        try:
            config = load(self.config_path)
        except ConfigInvalid as e:
            log.error("reload refused, the old config stays: %s", e.message)
            self.state.set_fact("reload", json.dumps({"at": time.time(), "ok": False, "message": e.message}))
            return
        if config.state_dir != self.config.state_dir:
            log.warning("state_dir changes only on restart; keeping %s", self.config.state_dir)
            config = replace(config, state_dir=self.config.state_dir)
        old, self.config = self.config, config
        now = datetime.now()
        for job in config.jobs.values():  # a changed schedule counts from now
            for kind in KINDS:
                before = old.jobs.get(job.name)
                schedule = schedule_of(job, kind)
                if schedule and (before is None or schedule_of(before, kind) != schedule):
                    plan = self.state.plan(job.name, kind)
                    self.state.set_plan(replace(plan, next_run=schedule.next_after(now).timestamp()))
        self.state.set_fact("reload", json.dumps({"at": time.time(), "ok": True, "message": ""}))
        for name in list(self.trackers):
            if name not in config.jobs or not config.jobs[name].track:
                self._stop_tracker(name)
        log.info("config reloaded: %d jobs", len(config.jobs))

    def _shutdown(self) -> None:
        with self.children_lock:
            for child in self.children:
                self._signal(child, signal.SIGTERM)
        for t in list(self.running.values()):
            t.join(timeout=STOP_GRACE_S)
        with self.children_lock:
            for child in self.children:
                self._signal(child, signal.SIGKILL)
        for name in list(self.trackers):
            self._stop_tracker(name)
        self._update_metrics()
        self.state.close()

    @staticmethod
    def _signal(child: subprocess.Popen[Any], sig: int) -> None:
        try:
            os.killpg(child.pid, sig)
            os.killpg(child.pid, signal.SIGCONT)  # a stopped child must run to end cleanly
        except ProcessLookupError:
            pass

    # --- trackers
    def _supervise_trackers(self) -> None:
        for name, job in self.config.jobs.items():
            if not job.track:
                continue
            p = self.trackers.get(name)
            if p is not None and p.poll() is None:
                continue
            now = time.monotonic()
            if p is not None:
                log.warning("the change tracker of %s ended (exit %s); restarting it", name, p.returncode)
                self.state.set_fact(
                    f"tracker:{name}", json.dumps({"state": "restarting", "exit": p.returncode, "at": time.time()})
                )
                del self.trackers[name]
                self.tracker_died[name] = now
            if now - self.tracker_died.get(name, -1e9) < TRACKER_RESTART_S:
                continue
            self.trackers[name] = subprocess.Popen(
                liferaft_command("track", job.source, "--quiet"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            self.state.set_fact(
                f"tracker:{name}", json.dumps({"state": "running", "pid": self.trackers[name].pid, "at": time.time()})
            )

    def _stop_tracker(self, name: str) -> None:
        p = self.trackers.pop(name)
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.state.set_fact(f"tracker:{name}", json.dumps({"state": "stopped", "at": time.time()}))

    # --- scheduling
    def _due(self, job: JobConfig, kind: str, now: float) -> Plan | None:
        schedule = schedule_of(job, kind)
        if schedule is None:
            return None
        plan = self.state.plan(job.name, kind)
        if plan.next_run is None:
            base = datetime.fromtimestamp(plan.last_slot if plan.last_slot is not None else now)
            plan = replace(plan, next_run=schedule.next_after(base).timestamp())
            self.state.set_plan(plan)
        return plan if plan.next_run is not None and plan.next_run <= now else None

    def _start_due(self) -> None:
        now = time.time()
        for key, t in list(self.running.items()):
            if not t.is_alive():
                del self.running[key]
        due = [(plan, job, kind) for job in self.config.jobs.values() for kind in KINDS if (plan := self._due(job, kind, now))]
        for plan, job, kind in sorted(due, key=lambda d: d[0].next_run or 0.0):  # the longest waiting first: none starves
            if (job.name, kind) in self.running or job.source in self.busy:
                continue
            if len(self.running) >= self.config.limits.jobs_at_once:
                return
            self.busy.add(job.source)
            t = threading.Thread(target=self._run_job, args=(job, kind, plan), name=f"{job.name}:{kind}", daemon=True)
            self.running[(job.name, kind)] = t
            t.start()

    def _run_job(self, job: JobConfig, kind: str, plan: Plan) -> None:
        slot = plan.next_run
        run_id = self.state.start(job.name, kind, slot)
        log.info("%s %s: started", job.name, kind)
        if kind == "backup":
            alerts.ping(job.ping, "start")
        started = time.time()
        try:
            result, code, output, message, figures = self._steps(job, kind)
        except Exception as e:  # a bug in one run must not end the daemon
            log.exception("%s %s: internal error", job.name, kind)
            result, code, output, message, figures = "failed", None, "", f"internal error: {e}", {}
        finally:
            self.busy.discard(job.source)
        if self.stop.is_set() and result != "ok":
            result, message = "cancelled", "the daemon was stopped during the run"
        self.state.finish(run_id, result, code, output, message, **figures)
        log.info("%s %s: %s%s", job.name, kind, result, f" ({message})" if message else "")
        if result == "cancelled":  # its slot stays due: the next daemon runs it first
            return
        schedule = schedule_of(job, kind)
        assert schedule is not None
        now = time.time()
        base = started if isinstance(schedule, Interval) else now
        regular = schedule.next_after(datetime.fromtimestamp(base)).timestamp()
        failures = 0 if result == "ok" else plan.failures + (result == "failed")
        next_run = regular
        if result == "failed":
            next_run = min(regular, now + min(self.config.retry_after * 2 ** (failures - 1), MAX_BACKOFF_S))
        rpo_alerted = plan.rpo_alerted and result != "ok"
        self.state.set_plan(Plan(job.name, kind, slot, next_run, failures, rpo_alerted))
        self._tell(job, kind, result, message or "", output, recovered=result == "ok" and plan.failures > 0)
        self.ran.set()
        self.wake.set()

    def _tell(self, job: JobConfig, kind: str, result: str, message: str, output: str, recovered: bool) -> None:
        on = self.config.notify.on
        if kind == "backup":
            alerts.ping(job.ping, "success" if result == "ok" else "fail", output[-10000:])
        if result == "failed" and "failure" in on:
            alerts.notify(self.config.notify.urls, f"liferaft: {job.name} {kind} FAILED on {socket.gethostname()}",
                          f"{message}\n\n{output[-4000:]}")  # fmt: skip
        elif recovered and "recovery" in on:
            alerts.notify(self.config.notify.urls, f"liferaft: {job.name} {kind} recovered on {socket.gethostname()}",
                          f"{job.name} {kind} succeeded again after failing. {message}")  # fmt: skip
        elif result == "ok" and "success" in on:
            alerts.notify(self.config.notify.urls, f"liferaft: {job.name} {kind} ok", message)

    def _steps(self, job: JobConfig, kind: str) -> tuple[str, int | None, str, str | None, dict[str, Any]]:
        """The run's child processes in order; (result, exit code, output, message, figures)."""
        repo = self.config.repositories[job.repository]
        env = {**os.environ, **repo.env(), "LIFERAFT_JOB": job.name}
        if self.config.limits.bandwidth:
            env[LIMIT_ENV] = str(self.config.limits.bandwidth)
        output: list[str] = []
        figures: dict[str, Any] = {}
        if job.before:
            step = self._child(["/bin/sh", "-c", job.before], env, output, json_out=False)
            if not step.ok:
                return self._failed(job, env, output, step, "the before hook failed")
        if kind == "backup":
            args = ["backup", job.source, "--json", "--quiet", *job.args]
            if job.provider:
                args += ["--provider", job.provider]
            step = self._child(liferaft_command(*args), env, output)
            if not step.ok:
                return self._failed(job, env, output, step, "the backup failed")
            r = step.result or {}
            figures = {"new_bytes": r.get("new_bytes"), "stored_bytes": r.get("stored_bytes"), "snapshot": r.get("snapshot_id")}
            sid = str(r.get("snapshot_id", "?"))[:12]
            message = f"snapshot {sid}: {r.get('new_bytes', 0)} new bytes, {r.get('stored_bytes', 0)} stored"
            if job.keep:
                keep = [f"--keep-{rule}={n}" for rule, n in job.keep.items()]
                step = self._child(
                    liferaft_command("forget", "--source", job.source, *keep, "--prune", "--json", "--quiet"), env, output
                )
                if not step.ok:
                    return self._failed(job, env, output, step, "retention (forget) failed", figures)
            if job.copy_to:
                dest = self.config.repositories[job.copy_to]
                copy_env = {**env, **{k: v for k, v in dest.env().items() if not k.startswith("LIFERAFT_")}}
                if dest.password_file:
                    copy_env["LIFERAFT_TO_PASSWORD_FILE"] = dest.password_file
                step = self._child(liferaft_command("copy", "--to", dest.location, "--json", "--quiet"), copy_env, output)
                if not step.ok:
                    return self._failed(job, env, output, step, f"the copy to {job.copy_to} failed", figures)
                message += f"; copied to {job.copy_to}"
        elif kind == "verify":
            assert job.verify
            share, read = job.verify.read_share, []
            k = int(self.state.fact(f"verify-share:{job.name}") or "0") % max(share, 1) + 1  # the next share in turn
            if share == 1:
                read = ["--read-data"]
            elif share > 1:
                read = [f"--read-data-subset={k}/{share}"]
            step = self._child(liferaft_command("verify", "--json", *read), env, output)
            if share > 1 and step.result is not None:  # it ran through (clean or not): that share was read
                self.state.set_fact(f"verify-share:{job.name}", str(k))
            if not step.ok:
                return self._failed(job, env, output, step, "verify found a problem")
            message = "the repository verified" + (f" (pack data: share {k}/{share})" if share > 1 else "")
        else:
            step = self._child(liferaft_command("drill", "--untested", "--json", "--quiet"), env, output)
            if not step.ok:
                return self._failed(job, env, output, step, "a drill failed")
            message = "drills passed"
        if job.after:
            self._child(["/bin/sh", "-c", job.after], {**env, "LIFERAFT_RESULT": "ok"}, output, json_out=False)
        return "ok", 0, "".join(output), message, figures

    def _failed(
        self, job: JobConfig, env: dict[str, str], output: list[str], step: _Step, what: str,
        figures: dict[str, Any] | None = None,
    ) -> tuple[str, int | None, str, str | None, dict[str, Any]]:  # fmt: skip
        last = next((ln for ln in reversed(step.output.strip().splitlines()) if ln.strip()), "")
        message = f"{what} (exit {step.exit_code}): {last}"
        if job.on_failure:
            self._child(["/bin/sh", "-c", job.on_failure], {**env, "LIFERAFT_RESULT": "failed", "LIFERAFT_MESSAGE": message},
                        output, json_out=False)  # fmt: skip
        return "failed", step.exit_code, "".join(output), message, figures or {}

    def _child(self, argv: list[str], env: dict[str, str], output: list[str], json_out: bool = True) -> _Step:
        if self.stop.is_set():
            return _Step(False, 130, "not started: the daemon is stopping", None)
        output.append(f"$ {' '.join(argv[2:] if argv[:2] == [sys.executable, '-m'] else argv)}\n")
        p = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # its own process group: the daemon's SIGTERM reaches it through us only
        )  # fmt: skip
        _lower_priority(p.pid, self.config.limits)
        with self.children_lock:
            self.children.add(p)
        try:
            out, err = p.communicate()
        finally:
            with self.children_lock:
                self.children.discard(p)
        output.append(err)
        result = None
        if json_out and out.strip():
            try:
                result = json.loads(out)
            except ValueError:
                output.append(out)
        elif out:
            output.append(out)
        return _Step(
            p.returncode == 0, p.returncode, err + ("" if json_out else out), result if isinstance(result, dict) else None
        )

    # --- objectives and metrics
    def _check_rpo(self) -> None:
        now = time.time()
        for job in self.config.jobs.values():
            if job.rpo is None:
                continue
            plan = self.state.plan(job.name, "backup")
            age = self.state.rpo_age(job.name, now)
            if age is not None and age > job.rpo and not plan.rpo_alerted:
                log.warning("%s: the newest good snapshot is %.0f s old, past its RPO of %.0f s", job.name, age, job.rpo)
                if "rpo" in self.config.notify.on:
                    alerts.notify(self.config.notify.urls, f"liferaft: {job.name} missed its RPO on {socket.gethostname()}",
                                  f"The newest good snapshot of {job.name} is {age / 60:.0f} min old; "
                                  f"the objective is {job.rpo / 60:.0f} min.")  # fmt: skip
                self.state.set_plan(replace(plan, rpo_alerted=True))

    def _update_metrics(self) -> None:
        now = time.time()
        out = []
        for job in self.config.jobs.values():
            ok, last = self.state.last(job.name, "backup", "ok"), self.state.last(job.name, "backup")
            out.append(alerts.JobMetrics(
                job.name, ok.ended if ok else None, last.duration if last else None, last.new_bytes if last else None,
                last.stored_bytes if last else None, self.state.rpo_age(job.name, now), self.state.failing(job.name),
            ))  # fmt: skip
        self.metrics.update(out)
