"""Telling someone: notifications through apprise (email over SMTP, ntfy, Slack, Teams, Matrix,
webhooks: one URL each), healthchecks.io-style pings (``URL/start``, ``URL``, ``URL/fail``) and
Prometheus metrics (a textfile-collector file, or an HTTP endpoint).

A notifier that fails is logged and never fails the job: the backup matters more than its mail.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("liferaft.daemon")


def notify(urls: Iterable[str], title: str, body: str) -> bool:
    """Send to every URL; True when all took it."""
    urls = list(urls)
    if not urls:
        return True
    import apprise

    a = apprise.Apprise()
    for u in urls:
        if not a.add(u):
            log.warning("notification URL not understood by apprise: %s", u.split("://")[0] + "://...")
    ok = bool(a.notify(title=title, body=body))
    if not ok:
        log.warning("a notification was not delivered: %s", title)
    return ok


def ping(url: str | None, event: str, body: str = "") -> None:
    """healthchecks.io convention: URL/start when a run begins, URL on success, URL/fail on failure."""
    if not url:
        return
    target = url.rstrip("/") + {"start": "/start", "success": "", "fail": "/fail"}[event]
    try:
        req = urllib.request.Request(target, data=body.encode()[-10000:] or None, method="POST" if body else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
    except OSError as e:
        log.warning("ping %s failed: %s", event, e)


@dataclass(frozen=True)
class JobMetrics:
    job: str
    last_success: float | None
    last_duration: float | None
    last_new_bytes: int | None
    last_stored_bytes: int | None
    rpo_age: float | None
    failing: bool


class Metrics:
    """The gauges per job; ``write`` renews the textfile (atomically: the collector never reads half)."""

    def __init__(self, textfile: Path | None, listen: str | None) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        self.textfile = textfile
        self.registry = CollectorRegistry()
        labels = ["job"]
        self.gauges = {
            "last_success": Gauge(
                "liferaft_last_success_timestamp_seconds", "end of the newest good backup", labels, registry=self.registry
            ),
            "last_duration": Gauge(
                "liferaft_last_duration_seconds", "duration of the last backup", labels, registry=self.registry
            ),
            "last_new_bytes": Gauge("liferaft_last_new_bytes", "bytes the last backup found new", labels, registry=self.registry),
            "last_stored_bytes": Gauge(
                "liferaft_last_stored_bytes", "bytes the last backup stored", labels, registry=self.registry
            ),
            "rpo_age": Gauge("liferaft_rpo_age_seconds", "age of the newest good snapshot", labels, registry=self.registry),
            "failing": Gauge(
                "liferaft_job_failing", "1 when its last backup, verify or drill failed", labels, registry=self.registry
            ),
        }
        if listen:
            from prometheus_client import start_http_server

            host, _, port = listen.rpartition(":")
            start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)

    def update(self, jobs: Iterable[JobMetrics]) -> None:
        for m in jobs:
            for name, gauge in self.gauges.items():
                value = getattr(m, name)
                if value is not None:
                    gauge.labels(job=m.job).set(float(value))
        if self.textfile:
            from prometheus_client import write_to_textfile

            try:
                self.textfile.parent.mkdir(parents=True, exist_ok=True)
                write_to_textfile(str(self.textfile), self.registry)
            except OSError as e:
                log.warning("metrics file %s cannot be written: %s", self.textfile, e)
