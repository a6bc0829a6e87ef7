"""The complete commented example that ``liferaft config example`` prints: it loads as it is (a
test checks), and works once its paths and URLs are yours."""

EXAMPLE = """\
# /etc/liferaft/liferaft.toml: what 'liferaft daemon' runs. Check it with 'liferaft config check'.
# Schedules: systemd calendar events ("daily", "hourly", "Mon..Fri 22:00", "*:0/15",
# "*-*-01 03:00") or intervals ("30min", "6h"). Durations: "90s", "15min", "2h", "7d".

[daemon]
state_dir = "/var/lib/liferaft/daemon"      # its state database (history, plans) and lock
metrics_file = "/var/lib/liferaft/liferaft.prom"   # Prometheus textfile collector; or:
# metrics_listen = "127.0.0.1:9477"         # an HTTP endpoint for Prometheus to scrape
retry_after = "5min"                        # a failed run is retried after this, doubling each time

[limits]
nice = 10                  # CPU priority of every run (0: normal, 19: lowest)
io_class = "idle"          # I/O priority: idle (only when the disk has nothing else to do), best-effort, normal
jobs_at_once = 1           # runs at the same time (never two on one source)
# bandwidth = "20MiB"      # per second, what each run may write to its repository (an offsite line stays usable)

# Repositories: secrets by file reference, never inline.
[repositories.local]
location = "/var/lib/liferaft/repository"
password_file = "/var/lib/liferaft/password"

# [repositories.offsite]
# location = "s3://office-backups/server1"
# password_file = "/etc/liferaft/offsite.password"
# env_file = "/etc/liferaft/offsite.env"    # AWS_ENDPOINT_URL=..., AWS_ACCESS_KEY_ID=..., AWS_SECRET_ACCESS_KEY=...

[notify]
# apprise URLs (https://github.com/caronc/apprise/wiki): mailto://, ntfy://, slack://, msteams://, matrix://, json:// ...
urls = []                                   # e.g. ["mailtos://user:pass@smtp.example.net?to=admin@example.net"]
# urls_file = "/etc/liferaft/notify.urls"   # one URL a line, to keep SMTP passwords out of this file
on = ["failure", "recovery", "rpo"]         # add "success" for a mail after every good run

[jobs.system]
source = "/var/tmp/disk.img"                # a disk (/dev/sda), a partition, an image file or a mountpoint
repository = "local"
schedule = "hourly"
rpo = "2h"                                  # alert when the newest good snapshot is older than this
track = false                               # true: keep a change tracker running, incrementals read only what changed
keep = { hourly = 24, daily = 7, weekly = 4, monthly = 12 }   # retention after each backup (then gc)
# copy_to = "offsite"                       # copy each new snapshot there after the backup
# provider = "freeze_trace"                 # default: live when its filesystems are mounted
# ping = "https://hc-ping.com/your-uuid"    # healthchecks.io-style: URL/start, URL, URL/fail
# before = "systemctl stop myapp-cache"     # hooks: shell commands; LIFERAFT_JOB, LIFERAFT_RESULT are set
# after = "..."
# on_failure = "..."
verify = { schedule = "daily", read_data = "1/7" }  # a seventh of the packs read each run (all in 7 runs); true: all
# drill = { schedule = "Sat 03:00" }        # boot each new snapshot in QEMU until its login prompt
"""
