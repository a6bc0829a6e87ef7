"""benchmarks/nbd-export.py: an nbdkit Python plugin serving the latest snapshot of repo= (read
only, reads in parallel) through liferaft's snapshot reader, for benchmarks/mount to boot the
test guest from beside liferaft's FUSE mount. `site=` adds the site-packages liferaft is installed
in (nbdkit embeds the system's Python); LIFERAFT_PASSWORD opens the repository."""

import os

import nbdkit

API_VERSION = 2
settings = {}
image = None


def config(key, value):
    settings[key] = value


def config_complete():
    global image
    if "site" in settings:
        import site

        site.addsitedir(settings["site"])  # its .pth files too: an editable install
    import liferaft
    from liferaft.repo.image import SnapshotImage

    repo = liferaft.open_repository(settings["repo"], os.environ["LIFERAFT_PASSWORD"].encode())
    _, snap = sorted(repo.snapshots(), key=lambda s: s[1].time)[-1]
    image = SnapshotImage(repo, snap)


def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL


def open(readonly):
    return 1


def get_size(h):
    return image.size


def can_write(h):
    return False


def pread(h, buf, offset, flags):
    buf[:] = image.read_at(offset, len(buf))
