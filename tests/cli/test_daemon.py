"""The daemon as an administrator runs it: a real ``liferaft daemon`` process with a config file,
real backups into a real repository, a real SMTP server (aiosmtpd) and a webhook receiver on
loopback. Waits are bounded and wait for events (a run in the state database, a mail), never for
a speed of this machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from liferaft.ops.config_example import EXAMPLE
from liferaft.store.faults import PAUSE_ENV
from tests.cli.test_live import live_fs
from tests.conftest import PASSWORD, PYTHON, Result, write_image

__all__ = ["live_fs"]  # the fixture, shared with the live tests

ROOT = Path(__file__).parents[2]


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 120.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


class Setup:
    def __init__(self, tmp: Path, cli: Callable[..., Result]) -> None:
        self.tmp = tmp
        self.repo = tmp / "repo"
        self.password = tmp / "password"
        self.password.write_text(PASSWORD)
        self.source = tmp / "disk.img"
        write_image(self.source, 6 << 20, seed=3)
        assert cli("init", repo=self.repo).code == 0
        self.config = tmp / "liferaft.toml"
        self.state = tmp / "state"
        self.procs: list[subprocess.Popen[str]] = []

    def write(self, job: str = "", top: str = "") -> Path:
        self.config.write_text(
            f'[daemon]\nstate_dir = "{self.state}"\nmetrics_file = "{self.tmp}/liferaft.prom"\nretry_after = "1s"\n{top}\n'
            f'[repositories.main]\nlocation = "{self.repo}"\npassword_file = "{self.password}"\n\n'
            f'[jobs.disk]\nsource = "{self.source}"\nrepository = "main"\n{job}\n'
        )
        return self.config

    def start(self, **env: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [PYTHON, "-m", "liferaft", "daemon", "--config", str(self.config)], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env},
        )  # fmt: skip
        self.procs.append(p)
        wait_for("the daemon to start", lambda: p.poll() is not None or (self.state / "state.db").exists())
        return p

    def stop(self, p: subprocess.Popen[str]) -> tuple[int, str]:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=180)
        return p.returncode, err

    def runs(self, kind: str = "backup") -> list[dict[str, Any]]:
        if not (self.state / "state.db").exists():
            return []
        with sqlite3.connect(self.state / "state.db") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM runs WHERE kind=? ORDER BY id", (kind,))]

    def fact(self, key: str) -> dict[str, Any]:
        with sqlite3.connect(self.state / "state.db") as db:
            row = db.execute("SELECT value FROM facts WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else {}

    def finished(self, n: int, result: str | None = None) -> list[dict[str, Any]]:
        done = [r for r in self.runs() if r["result"] != "running" and (result is None or r["result"] == result)]
        return done if len(done) >= n else []

    def status(self) -> tuple[int, dict[str, Any]]:
        p = subprocess.run([PYTHON, "-m", "liferaft", "status", "--json", "-c", str(self.config)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        return p.returncode, json.loads(p.stdout)

    def snapshots(self) -> list[dict[str, Any]]:
        env = {**os.environ, "LIFERAFT_PASSWORD": PASSWORD}
        p = subprocess.run([PYTHON, "-m", "liferaft", "snapshots", "--json", "--repo", str(self.repo)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
        assert p.returncode == 0, p.stderr
        out: list[dict[str, Any]] = json.loads(p.stdout)
        return out


@pytest.fixture
def setup(tmp_path: Path, cli: Callable[..., Result]) -> Iterator[Setup]:
    s = Setup(tmp_path, cli)
    yield s
    for p in s.procs:  # every daemon and whatever it started ends with the test
        if p.poll() is None:
            kids = psutil.Process(p.pid).children(recursive=True)
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for k in kids:
                try:
                    k.kill()
                except psutil.Error:
                    pass


def test_jobs_run_on_schedule_status_reports_them_and_retention_keeps_what_it_says(setup: Setup) -> None:
    setup.write('schedule = "2s"\nrpo = "1h"\nkeep = { last = 2 }\nverify = { schedule = "2s", read_data = "1/2" }')
    d = setup.start()
    done = wait_for("three good backups", lambda: setup.finished(3, "ok"))

    def verified() -> list[dict[str, Any]]:
        return [r for r in setup.runs("verify") if r["result"] == "ok"]

    wait_for("two verify runs", lambda: len(verified()) >= 2)
    shares = [r["message"].rsplit("share ", 1)[-1] for r in verified()][:2]
    assert shares == ["1/2)", "2/2)"], verified()  # the next share each run, so both halves of the packs get read
    code, st = setup.status()
    assert code == 0, st
    job = st["jobs"][0]
    assert st["running"] and st["pid"] == d.pid
    assert job["job"] == "disk" and job["last_run"]["result"] == "ok" and job["rpo_ok"] and job["healthy"]
    assert job["next_run"] > job["last_run"]["started"]
    assert job["last_run"]["snapshot"] in {s["id"] for s in setup.snapshots()}
    assert done[0]["new_bytes"] > 0  # the first stored the disk; the next found nothing new
    assert done[1]["new_bytes"] == 0
    rc, err = setup.stop(d)
    assert rc == 0, err
    assert len(setup.snapshots()) == 2  # keep last 2, after every backup
    metrics = (setup.tmp / "liferaft.prom").read_text()
    assert 'liferaft_last_success_timestamp_seconds{job="disk"}' in metrics
    assert 'liferaft_job_failing{job="disk"} 0.0' in metrics
    hist = subprocess.run([PYTHON, "-m", "liferaft", "history", "disk", "--log", "-c", str(setup.config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert hist.returncode == 0 and hist.stdout.count(" backup ") >= 3 and "$ liferaft backup" in hist.stdout


def test_a_second_daemon_for_one_config_is_refused(setup: Setup) -> None:
    setup.write('schedule = "1h"')
    first = setup.start()
    second = subprocess.run([PYTHON, "-m", "liferaft", "daemon", "-c", str(setup.config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert second.returncode == 81, second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert first.poll() is None


class Mailbox:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        with socket.socket() as probe:  # a free port (the controller cannot take port 0)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def texts(self, subject_has: str) -> list[str]:
        return [
            "".join(p.get_payload(decode=True).decode() for p in m.walk() if p.get_content_type() == "text/plain")
            for m in list(self.messages) if subject_has in str(m["Subject"])
        ]  # fmt: skip


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], got
    server.shutdown()
    server.server_close()


def test_failure_and_recovery_are_mailed_and_posted_and_status_fails_meanwhile(
    setup: Setup, mailbox: Mailbox, webhook: tuple[int, list[dict[str, Any]]]
) -> None:
    port, posts = webhook
    urls = [f"mailto://127.0.0.1:{mailbox.port}?from=liferaft@localhost&to=admin@localhost",
            f"json://127.0.0.1:{port}/hook"]  # fmt: skip
    setup.write('schedule = "2s"', top=f"[notify]\nurls = {json.dumps(urls)}\n")
    setup.start()
    wait_for("a good backup", lambda: setup.finished(1, "ok"))
    moved = setup.tmp / "repo.away"
    setup.repo.rename(moved)  # the disk with the repository is gone
    # a backup running at the rename may fail otherwise; the next ones find no repository
    failed = wait_for("a run that finds no repository", lambda: [r for r in setup.finished(1, "failed") if r["exit_code"] == 10])
    assert "is not a liferaft repository" in failed[0]["message"]
    wait_for("its failure mail", lambda: any("is not a liferaft repository" in t for t in mailbox.texts("FAILED")))
    code, st = setup.status()
    assert code == 82 and st["jobs"][0]["failing"]
    assert any("FAILED" in p.get("title", "") for p in posts)
    moved.rename(setup.repo)  # it is back
    wait_for("the recovery mail", lambda: any("recovered" in s for s in mailbox.subjects()))
    assert any("recovered" in p.get("title", "") for p in posts)
    wait_for("status healthy again", lambda: setup.status()[0] == 0)


def test_a_verify_that_finds_damage_makes_the_job_unhealthy(setup: Setup, cli: Callable[..., Result]) -> None:
    assert cli("backup", str(setup.source), repo=setup.repo).code == 0
    pack = next(p for p in (setup.repo / "packs").rglob("*") if p.is_file())
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte on the repository's disk
    pack.write_bytes(bytes(data))
    setup.write('schedule = "1d"\nverify = { schedule = "2s", read_data = true }')  # no backup comes to heal it
    setup.start()
    failed = wait_for("a verify that fails", lambda: [r for r in setup.runs("verify") if r["result"] == "failed"])
    assert failed[0]["exit_code"] == 50, failed[0]
    code, st = setup.status()
    assert code == 82 and st["jobs"][0]["failing"] and st["jobs"][0]["last_verify"]["result"] == "failed"
    text = subprocess.run([PYTHON, "-m", "liferaft", "status", "-c", str(setup.config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert text.returncode == 82 and "last verify failed" in text.stdout and "verify found a problem" in text.stdout


def test_a_slot_missed_while_stopped_runs_once_when_the_daemon_is_back(setup: Setup) -> None:
    setup.write('schedule = "*:*:0/3"')  # every 3 s, on the clock
    d = setup.start()
    wait_for("a first backup", lambda: setup.finished(1, "ok"))
    assert setup.stop(d)[0] == 0
    before = len(setup.runs())
    time.sleep(7)  # at least two slots pass while no daemon runs
    back = time.time()
    setup.start()
    done = wait_for("two more backups", lambda: [r for r in setup.finished(before + 2)][before:] or None)
    first, second = done[0], done[1]
    assert first["slot"] < back  # one run for the slots missed while stopped...
    assert second["slot"] > back  # ...and the next one is a slot after the restart: not one per missed slot
    assert all(r["result"] == "ok" for r in done[:2])


def test_sigterm_during_a_backup_ends_it_cleanly_and_the_next_run_succeeds(setup: Setup, cli: Callable[..., Result]) -> None:
    setup.write('schedule = "1s"')
    d = setup.start(**{PAUSE_ENV: "snapshots/"})  # each backup stops itself just before its commit

    def paused_child() -> bool:
        try:
            return any(c.status() == psutil.STATUS_STOPPED for c in psutil.Process(d.pid).children(recursive=True))
        except psutil.Error:
            return False

    wait_for("a backup paused before its commit", paused_child)
    rc, err = setup.stop(d)
    assert rc == 0, err
    runs = setup.runs()
    assert [r["result"] for r in runs] == ["cancelled"]
    assert cli("verify", repo=setup.repo).code == 0
    assert setup.snapshots() == []  # nothing half committed
    setup.start()
    wait_for("the next backup", lambda: setup.finished(1, "ok"))
    assert len(setup.snapshots()) >= 1


@pytest.mark.parametrize(
    ("job", "line", "reason"),
    [
        ('schedule = "1h"\ncolour = "blue"', 14, "unknown key 'colour' in [jobs.disk]"),
        ('schedule = "Funday 10:00"', 13, "bad schedule 'Funday 10:00'"),
        ('schedule = "1h"\ncopy_to = "offsite"', 14, "copy_to 'offsite' is not one of the [repositories.NAME] (main)"),
        ('schedule = "1h"\nrpo = "soon"', 14, "bad rpo"),
        ("", 10, "[jobs.disk] has no schedule"),
        ('schedule = "1h"\nverify = { schedule = "daily", read_data = "2/7" }', 14, "read_data must be true, false or a share"),
    ],
)
def test_a_bad_config_is_refused_with_file_line_and_reason(setup: Setup, job: str, line: int, reason: str) -> None:
    setup.write(job)
    for cmd in (["config", "check"], ["daemon"]):
        p = subprocess.run([PYTHON, "-m", "liferaft", *cmd, "-c", str(setup.config)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert p.returncode == 80, p.stderr
        assert f"{setup.config}:{line}: " in p.stderr and reason in p.stderr, p.stderr
    assert not (setup.state / "state.db").exists()  # refused before anything ran


def test_one_unreachable_repository_does_not_stop_the_other_jobs(setup: Setup) -> None:
    setup.write('schedule = "2s"')
    text = setup.config.read_text()
    other = setup.tmp / "other.img"
    write_image(other, 2 << 20, seed=9)
    setup.config.write_text(
        text + f'\n[repositories.gone]\nlocation = "{setup.tmp}/no-such-repo"\npassword_file = "{setup.password}"\n'
        f'\n[jobs.lost]\nsource = "{other}"\nrepository = "gone"\nschedule = "2s"\n'
    )
    d = setup.start()
    wait_for("two good backups of the reachable job", lambda: setup.finished(2, "ok"))
    lost = [r for r in setup.runs() if r["job"] == "lost"]
    assert lost and all(r["result"] in ("failed", "running") for r in lost)
    assert d.poll() is None
    code, st = setup.status()
    assert code == 82
    assert {j["job"]: j["healthy"] for j in st["jobs"]} == {"disk": True, "lost": False}


def test_the_example_config_loads_and_service_install_writes_a_unit_systemd_accepts(setup: Setup, tmp_path: Path) -> None:
    p = subprocess.run([PYTHON, "-m", "liferaft", "config", "example"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == EXAMPLE
    example = tmp_path / "example.toml"
    example.write_text(
        p.stdout.replace("/var/lib/liferaft/password", str(setup.password)).replace("/var/lib/liferaft", str(tmp_path / "lib"))
    )
    check = subprocess.run([PYTHON, "-m", "liferaft", "config", "check", "-c", str(example)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "job system: /var/tmp/disk.img -> local, hourly" in check.stdout
    units = tmp_path / "units"
    inst = subprocess.run([PYTHON, "-m", "liferaft", "service", "install", "-c", str(example), "--unit-dir", str(units)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert inst.returncode == 0, inst.stderr
    unit = units / "liferaft.service"
    assert f"daemon --config {example}" in unit.read_text()
    assert (units / "multi-user.target.wants" / "liferaft.service").resolve() == unit
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stderr


def test_the_change_tracker_is_kept_running_and_restarted_after_kill_9(
    setup: Setup, live_fs: Callable[..., tuple[str, Path]]
) -> None:
    from liferaft.source.linux.blocktrace import TRACEFS, remove_stale
    from liferaft.source.linux.tracking import state_path

    dev, _ = live_fs("ext4", 64)
    setup.source = Path(dev)
    setup.write('schedule = "1h"\ntrack = true')
    setup.start()

    def tracker_pid() -> int | None:
        fact = setup.fact("tracker:disk")
        try:
            serving = json.loads(state_path(dev).read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None
        return serving if fact.get("state") == "running" and fact.get("pid") == serving else None

    try:
        first = wait_for("the tracker to serve", tracker_pid)
        assert setup.status()[1]["jobs"][0]["tracking"] == "running"
        os.kill(first, signal.SIGKILL)
        second = wait_for("a new tracker to serve", lambda: (p := tracker_pid()) and p != first and p)
        assert psutil.pid_exists(second)
    finally:
        remove_stale(TRACEFS)  # the instance of the tracker killed with -9


def test_readiness_and_watchdog_go_to_systemd_and_sighup_reloads_the_config(setup: Setup) -> None:
    setup.write('schedule = "1h"')
    path = setup.tmp / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(60)
        d = setup.start(NOTIFY_SOCKET=str(path), WATCHDOG_USEC="1000000")
        got = [sock.recv(4096).decode() for _ in range(2)]
        assert got[0].startswith("READY=1") and got[1] == "WATCHDOG=1", got
        setup.config.write_text(setup.config.read_text() + "\nbroken = [\n")  # a wrong config on reload is refused...
        d.send_signal(signal.SIGHUP)
        wait_for("the reload refused", lambda: setup.fact("reload").get("ok") is False)
        setup.write('schedule = "1s"')  # ...and a good one taken: the job now runs every second
        d.send_signal(signal.SIGHUP)
        wait_for("the reload taken", lambda: setup.fact("reload").get("ok") is True)
        wait_for("a backup on the reloaded schedule", lambda: setup.finished(1, "ok"))
        rc, err = setup.stop(d)
        assert rc == 0 and "reload refused" in err and "config reloaded" in err, err
        assert any(sock.recv(4096).decode() == "STOPPING=1" for _ in range(200)), "no STOPPING=1"


def test_the_bandwidth_cap_holds_what_a_run_writes_to_its_rate() -> None:
    from liferaft.store.limit import LimitStore
    from liferaft.store.memory import MemoryStore

    store = LimitStore(MemoryStore(), 1 << 20)  # 1 MiB/s, a second of burst
    began = time.monotonic()
    for i in range(6):
        store.put(f"packs/{i:02x}", b"x" * (512 << 10))
    # 3 MiB at 1 MiB/s with 1 MiB of burst: at least 2 s, however fast this machine (a lower bound only)
    assert time.monotonic() - began >= 1.9
    assert len(store.get("packs/05")) == 512 << 10
