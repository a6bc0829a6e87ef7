"""The daemon's config file (``/etc/liferaft/liferaft.toml``): repositories, jobs, notifications
and resource limits, read into frozen dataclasses and checked whole at load.

A wrong file is refused with its path, the line and what is wrong (``ConfigInvalid``), before
anything runs. TOML because it is in the standard library (``tomllib``) and has comments; tomllib
gives no positions, so ``_Where`` finds the line of a table or key in the text itself.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liferaft.errors import ConfigInvalid
from liferaft.format import units
from liferaft.ops.schedule import Schedule, ScheduleError, parse_duration, parse_schedule

DEFAULT_PATH = Path("/etc/liferaft/liferaft.toml")
KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
EVENTS = ("failure", "recovery", "rpo", "success")


@dataclass(frozen=True)
class RepositoryConfig:
    name: str
    location: str
    password_file: str | None = None
    env_file: str | None = None
    """KEY=VALUE lines (the AWS_* secrets of an S3 repository), kept out of the config itself."""

    def env(self) -> dict[str, str]:
        out = {"LIFERAFT_REPO": self.location}
        if self.password_file:
            out["LIFERAFT_PASSWORD_FILE"] = self.password_file
        if self.env_file:
            for line in Path(self.env_file).read_text().splitlines():
                k, sep, v = line.strip().partition("=")
                if sep and not k.startswith("#"):
                    out[k.strip().removeprefix("export ").strip()] = v.strip().strip("'\"")
        return out


@dataclass(frozen=True)
class Task:
    """A verify or drill that runs on its own schedule."""

    schedule: Schedule
    read_share: int = 0
    """verify: 0 reads no pack data, 1 every pack each run, N one N-th of the packs each run,
    the next share the next run (everything within N runs)."""


@dataclass(frozen=True)
class JobConfig:
    name: str
    source: str
    repository: str
    schedule: Schedule
    provider: str | None = None
    rpo: float | None = None
    track: bool = False
    keep: dict[str, int] = field(default_factory=dict)
    copy_to: str | None = None
    verify: Task | None = None
    drill: Task | None = None
    ping: str | None = None
    before: str | None = None
    after: str | None = None
    on_failure: str | None = None
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    nice: int = 10
    io_class: str = "idle"
    jobs_at_once: int = 1
    bandwidth: int | None = None
    """Bytes per second each run may write to its repository (None: no cap)."""


@dataclass(frozen=True)
class Notify:
    urls: tuple[str, ...] = ()
    on: tuple[str, ...] = ("failure", "recovery", "rpo")


@dataclass(frozen=True)
class Config:
    path: Path
    state_dir: Path
    repositories: dict[str, RepositoryConfig]
    jobs: dict[str, JobConfig]
    limits: Limits = Limits()
    notify: Notify = Notify()
    metrics_file: Path | None = None
    metrics_listen: str | None = None
    retry_after: float = 60.0


class _Where:
    """Lines of tables and keys in the TOML text, for the messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, table: str, key: str | None = None) -> int:
        header = re.compile(r"^\s*\[+\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]+")
        start = next((i for i, ln in enumerate(self.lines) if header.match(ln)), None)
        if start is None:  # an inline table (verify = { ... }): the line of its key in the table above
            parent, dot, name = table.rpartition(".")
            return self.line(parent, name) if dot else 1
        if key is None:
            return start + 1
        for i in range(start + 1, len(self.lines)):
            if re.match(r"^\s*\[", self.lines[i]):
                break
            if re.match(r"^\s*" + re.escape(key) + r"\s*=", self.lines[i]):
                return i + 1
        return start + 1


def load(path: Path) -> Config:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigInvalid(
            path=path, line=0, reason="no such file; 'liferaft config example' prints one to start from"
        ) from None
    except OSError as e:
        raise ConfigInvalid(path=path, line=0, reason=e.strerror or str(e)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigInvalid(path=path, line=int(m.group(1)) if m else 0, reason=str(e)) from None
    return _Parser(path, _Where(text)).config(data)


class _Parser:
    def __init__(self, path: Path, where: _Where) -> None:
        self.path, self.where = path, where

    def fail(self, table: str, key: str | None, reason: str) -> ConfigInvalid:
        return ConfigInvalid(path=self.path, line=self.where.line(table, key), reason=reason)

    def table(self, data: Any, name: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(name, None, f"[{name}] must be a table")
        for k in data:
            if k not in allowed:
                raise self.fail(name, k, f"unknown key {k!r} in [{name}] (known: {', '.join(sorted(allowed))})")
        return data

    def get(self, t: dict[str, Any], table: str, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in t:
            return default
        v = t[key]
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(table, key, f"{key} must be a {want}, not {v!r}")
        return v

    def schedule(self, t: dict[str, Any], table: str, key: str = "schedule") -> Schedule:
        if key not in t:
            raise self.fail(table, None, f"[{table}] has no {key}")
        try:
            return parse_schedule(self.get(t, table, key, str))
        except ScheduleError as e:
            raise self.fail(table, key, f"bad {key} {t[key]!r}: {e}") from None

    def duration(self, t: dict[str, Any], table: str, key: str) -> float | None:
        v = self.get(t, table, key, (str, int, float))
        if v is None:
            return None
        try:
            return parse_duration(str(v))
        except ScheduleError as e:
            raise self.fail(table, key, f"bad {key}: {e}") from None

    def config(self, data: dict[str, Any]) -> Config:
        for k in data:
            if k not in {"daemon", "limits", "notify", "repositories", "jobs"}:
                raise self.fail(k, None, f"unknown table [{k}] (known: daemon, limits, notify, repositories, jobs)")
        d = self.table(data.get("daemon", {}), "daemon", {"state_dir", "metrics_file", "metrics_listen", "retry_after"})
        lim = self.table(data.get("limits", {}), "limits", {"nice", "io_class", "jobs_at_once", "bandwidth"})
        io_class = self.get(lim, "limits", "io_class", str, "idle")
        if io_class not in ("idle", "best-effort", "normal"):
            raise self.fail("limits", "io_class", f"io_class must be idle, best-effort or normal, not {io_class!r}")
        jobs_at_once = self.get(lim, "limits", "jobs_at_once", int, 1)
        if jobs_at_once < 1:
            raise self.fail("limits", "jobs_at_once", "jobs_at_once must be at least 1")
        bandwidth = self.get(lim, "limits", "bandwidth", str)
        try:
            rate = units.parse_size(bandwidth) if bandwidth else None
        except ValueError as e:
            raise self.fail("limits", "bandwidth", f"bad bandwidth: {e}") from None
        limits = Limits(self.get(lim, "limits", "nice", int, 10), io_class, jobs_at_once, rate)
        n = self.table(data.get("notify", {}), "notify", {"urls", "urls_file", "on"})
        urls = list(self.get(n, "notify", "urls", list, []))
        if "urls_file" in n:
            f = Path(self.get(n, "notify", "urls_file", str))
            try:
                urls += [u.strip() for u in f.read_text().splitlines() if u.strip() and not u.startswith("#")]
            except OSError as e:
                raise self.fail("notify", "urls_file", f"cannot read {f}: {e.strerror}") from None
        on = tuple(self.get(n, "notify", "on", list, list(Notify.on)))
        for ev in on:
            if ev not in EVENTS:
                raise self.fail("notify", "on", f"unknown event {ev!r} (known: {', '.join(EVENTS)})")
        repos = {
            name: self.repository(name, r)
            for name, r in self.table(data.get("repositories", {}), "repositories", set(data.get("repositories", {}))).items()
        }
        jobs_data = data.get("jobs", {})
        if not jobs_data:
            raise self.fail("jobs", None, "no [jobs.NAME] table: a config runs at least one job")
        jobs = {name: self.job(name, j, repos) for name, j in self.table(jobs_data, "jobs", set(jobs_data)).items()}
        state_dir = Path(self.get(d, "daemon", "state_dir", str, "/var/lib/liferaft/daemon"))
        mf = self.get(d, "daemon", "metrics_file", str)
        return Config(
            path=self.path,
            state_dir=state_dir,
            repositories=repos,
            jobs=jobs,
            limits=limits,
            notify=Notify(tuple(urls), on),
            metrics_file=Path(mf) if mf else None,
            metrics_listen=self.get(d, "daemon", "metrics_listen", str),
            retry_after=self.duration(d, "daemon", "retry_after") or 60.0,
        )

    def repository(self, name: str, r: Any) -> RepositoryConfig:
        table = f"repositories.{name}"
        r = self.table(r, table, {"location", "password_file", "env_file"})
        location = self.get(r, table, "location", str)
        if not location:
            raise self.fail(table, None, f"[{table}] has no location")
        for key in ("password_file", "env_file"):
            f = self.get(r, table, key, str)
            if f and not os.access(f, os.R_OK):
                raise self.fail(table, key, f"{key} {f} cannot be read")
        return RepositoryConfig(name, location, self.get(r, table, "password_file", str), self.get(r, table, "env_file", str))

    def task(self, j: dict[str, Any], table: str, key: str) -> Task | None:
        if key not in j:
            return None
        where = f"{table}.{key}"
        t = self.table(j[key], where, {"schedule", "read_data"} if key == "verify" else {"schedule"})
        read = self.get(t, where, "read_data", (bool, str), False)
        if isinstance(read, bool):
            return Task(self.schedule(t, where), int(read))
        k, sep, n = read.partition("/")
        if not (k.strip() == "1" and sep and n.strip().isdigit() and int(n) >= 1):
            why = f"read_data must be true, false or a share '1/N' (1/7: a seventh of the packs each run), not {read!r}"
            raise self.fail(where, "read_data", why)
        return Task(self.schedule(t, where), int(n))

    def job(self, name: str, j: Any, repos: dict[str, RepositoryConfig]) -> JobConfig:
        table = f"jobs.{name}"
        allowed = {"source", "repository", "schedule", "provider", "rpo", "track", "keep", "copy_to", "verify", "drill",
                   "ping", "before", "after", "on_failure", "args"}  # fmt: skip
        j = self.table(j, table, allowed)
        source = self.get(j, table, "source", str)
        if not source:
            raise self.fail(table, None, f"[{table}] has no source")
        repository = self.get(j, table, "repository", str)
        if repository is None:
            raise self.fail(table, None, f"[{table}] has no repository")
        for key in ("repository", "copy_to"):
            ref = self.get(j, table, key, str)
            if ref is not None and ref not in repos:
                raise self.fail(table, key, f"{key} {ref!r} is not one of the [repositories.NAME] ({', '.join(repos) or 'none'})")
        keep: dict[str, int] = {}
        if "keep" in j:
            k = self.table(j["keep"], f"{table}.keep", set(KEEP_RULES))
            for rule in k:
                n = self.get(k, f"{table}.keep", rule, int)
                if n < 0:
                    raise self.fail(f"{table}.keep", rule, f"keep.{rule} must not be negative")
                keep[rule] = n
        provider = self.get(j, table, "provider", str)
        if provider not in (None, "plain", "freeze_trace", "reflink"):
            raise self.fail(table, "provider", f"provider must be plain, freeze_trace or reflink, not {provider!r}")
        return JobConfig(
            name=name,
            source=source,
            repository=repository,
            schedule=self.schedule(j, table),
            provider=provider,
            rpo=self.duration(j, table, "rpo"),
            track=bool(self.get(j, table, "track", bool, False)),
            keep=keep,
            copy_to=self.get(j, table, "copy_to", str),
            verify=self.task(j, table, "verify"),
            drill=self.task(j, table, "drill"),
            ping=self.get(j, table, "ping", str),
            before=self.get(j, table, "before", str),
            after=self.get(j, table, "after", str),
            on_failure=self.get(j, table, "on_failure", str),
            args=tuple(str(a) for a in self.get(j, table, "args", list, [])),
        )
