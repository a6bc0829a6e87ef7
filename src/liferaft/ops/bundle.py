"""``liferaft bundle``: liferaft and everything it imports, as one file that runs on a bare
Python, for the day a machine is restored from a rescue system without the internet.

The file is a zipapp: a shebang, then a zip of this liferaft and the installed distributions it
needs (their C extensions included), plus a ``__main__`` that extracts them once into a cache
folder (a C extension cannot be imported from inside a zip) and runs the command line. So it
runs on the same Python version and machine architecture as the one that wrote it, with no pip,
no venv and no network: ``python3 liferaft.pyz restore ...``. This is liferaft's own code and
not a packaging tool's (shiv, pex) because it must work with the standard library alone on the
rescue system, and copying installed files needs nothing more than ``importlib.metadata``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import liferaft

MAIN = '''\
"""liferaft, bundled: the files are extracted once, then the command line runs."""
import hashlib, os, sys, tempfile, zipfile
here = os.path.abspath(sys.argv[0])
with zipfile.ZipFile(here) as z:
    stamp = z.read("bundle.id").decode().strip()
    made_for = z.read("bundle.python").decode().split()
    here_is = [sys.implementation.cache_tag, os.uname().machine]
    if made_for != here_is:
        sys.exit(f"liferaft: this bundle was made for {' '.join(made_for)} and this Python is {' '.join(here_is)}: "
                 "run it with that Python (a live system that has it), or write a bundle with this one")
    where = os.environ.get("LIFERAFT_BUNDLE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "liferaft-bundle")
    target = os.path.join(where, stamp)
    if not os.path.exists(os.path.join(target, ".complete")):
        try:
            os.makedirs(where, exist_ok=True)
            work = tempfile.mkdtemp(dir=where)
        except OSError:  # a read-only home in a rescue system
            where = tempfile.gettempdir()
            target = os.path.join(where, "liferaft-bundle-" + stamp)
            work = tempfile.mkdtemp(dir=where)
        z.extractall(work, [n for n in z.namelist() if n.startswith("site/")])
        open(os.path.join(work, ".complete"), "w").close()
        try:
            os.rename(work, target)
        except OSError:  # another run extracted it meanwhile
            pass
sys.path.insert(0, os.path.join(target, "site"))
from liferaft.cli.main import entry
entry()
'''


@dataclass(frozen=True, slots=True)
class BundleResult:
    path: str
    size: int
    distributions: list[str]
    python: str


def _requirements(dist: md.Distribution) -> list[str]:
    """The names of what dist needs (not its extras; environment markers are taken as true,
    which errs towards bundling too much)."""
    names = []
    for req in dist.requires or []:
        if "extra ==" in req or "extra==" in req:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if match:
            names.append(match.group(1))
    return names


def closure(root: str = "liferaft") -> list[md.Distribution]:
    """root's distribution and every one it needs, installed here."""
    seen: dict[str, md.Distribution] = {}
    todo = [root]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # a marker-only dependency not installed on this Python
        seen[name] = dist
        todo += _requirements(dist)
    return list(seen.values())


def _files(dist: md.Distribution) -> list[tuple[Path, str]]:
    """(file on disk, its path below site-packages) for dist; for liferaft itself its package
    folder as it is (an editable install lists none)."""
    if dist.metadata["Name"].lower() == "liferaft":
        package = Path(liferaft.__file__).parent
        return [
            (f, f"liferaft/{f.relative_to(package)}")
            for f in sorted(package.rglob("*"))
            if f.is_file() and "__pycache__" not in f.parts
        ]
    found = []
    for rel in dist.files or []:
        text = str(rel)
        if text.startswith("..") or "__pycache__" in rel.parts or text.endswith(".pyc"):
            continue  # scripts in bin/, byte code (the bundle compiles nothing ahead)
        path = Path(str(dist.locate_file(rel)))
        if path.is_file():
            found.append((path, text))
    return found


def bundle(out: str) -> BundleResult:
    """Write the bundle to out (replaced whole once complete) and make it executable."""
    dists = closure()
    entries = [(path, f"site/{name}") for dist in dists for path, name in _files(dist)]
    digest = hashlib.sha256(liferaft.__version__.encode())
    for path, name in entries:
        digest.update(name.encode())
        digest.update(str(path.stat().st_size).encode())
        digest.update(str(path.stat().st_mtime_ns).encode())
    stamp = f"{liferaft.__version__}-{sys.implementation.cache_tag}-{digest.hexdigest()[:16]}"
    tmp = f"{out}.liferaft-partial"
    try:
        with open(tmp, "wb") as f:
            f.write(b"#!/usr/bin/env python3\n")
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
                z.writestr("__main__.py", MAIN)
                z.writestr("bundle.id", stamp + "\n")
                z.writestr("bundle.python", f"{sys.implementation.cache_tag} {os.uname().machine}\n")
                for path, name in entries:
                    z.write(path, name)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    python = f"{sys.implementation.name} {sys.version_info.major}.{sys.version_info.minor} ({os.uname().machine})"
    names = sorted(f"{d.metadata['Name']} {d.version}" for d in dists)
    return BundleResult(out, os.path.getsize(out), names, python)
