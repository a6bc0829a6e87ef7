"""Every partition-table and filesystem parser, fed corrupt input: never a crash, at worst a
fall back to imaging the region whole."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liferaft.disk import DiskFormatError
from liferaft.disk.fsmap import detect, ext, fat, ntfs, swap
from liferaft.disk.imaging import chunk_free, make_plan
from liferaft.disk.layout import read_layout
from tests.disks import Part, make_disk, partition_loop, sh

SIZE = 8 << 20


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, int]]:
    """Real metadata to mutate: the first MiBs of real partitions and disks, with their sizes."""
    work = tmp_path_factory.mktemp("seeds")
    out = {}
    for table in ("gpt", "mbr"):
        disk = work / f"{table}.img"
        parts = [Part("ext4", 12), Part("ntfs", 12), Part("fat16", 12), Part("fat32", 40), Part("swap", 4)]
        numbers = make_disk(disk, table, parts, work)
        out[table] = (disk.read_bytes()[:SIZE], disk.stat().st_size)
        for n, p in zip(numbers, parts, strict=True):
            with partition_loop(disk, n, readonly=True) as dev, open(dev, "rb") as f:
                out[p.fs] = (f.read(SIZE), os.lseek(f.fileno(), 0, os.SEEK_END))
    fs = work / "ext2.img"
    sh("truncate", "-s", "8M", str(fs))
    sh("mkfs.ext2", "-q", "-F", str(fs))
    out["ext2"] = (fs.read_bytes(), fs.stat().st_size)
    return out


def mutate(data: bytes, seed: int, flips: int) -> bytes:
    r = random.Random(seed)
    b = bytearray(data)
    hot = [0, 446, 510, 512, 1024, 1080, 2048, 4096]  # where the metadata starts
    for _ in range(flips):
        at = r.choice(hot) + r.randrange(1024) if r.random() < 0.7 else r.randrange(len(b))
        if at < len(b):
            b[at] = r.randrange(256)
    if r.random() < 0.2:
        b = b[: r.randrange(len(b) + 1)]
    return bytes(b)


def exercise(data: bytes, size: int | None = None) -> None:
    """Parse data as a disk of size bytes (reads past the data return nothing)."""
    size = size or len(data)
    read_at = lambda o, n: data[o : o + n] if o >= 0 else b""  # noqa: E731
    layout = read_layout(read_at, size)
    assert all(p.start >= 0 and p.end <= size for p in layout.partitions)
    for probe in (ext.probe, ntfs.probe, fat.probe, swap.probe):
        try:
            m = probe(read_at, size)
            if m is not None:
                for _ in zip(range(100_000), m.free_extents(), strict=False):
                    pass
        except DiskFormatError:
            pass
    found = detect(read_at, size)
    assert found is None or found.info.size <= size
    plan = make_plan(read_at, size)
    for _i, free in chunk_free(plan.free_extents(), 1 << 20, size):
        assert all(at >= 0 and at + n <= 1 << 20 for at, n in free)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["gpt", "mbr", "ext4", "ext2", "ntfs", "fat16", "fat32", "swap"]),
    seed=st.integers(0, 2**32),
    flips=st.integers(1, 64),
)
def test_parsers_survive_corrupt_metadata(seeds: dict[str, tuple[bytes, int]], kind: str, seed: int, flips: int) -> None:
    data, size = seeds[kind]
    exercise(mutate(data, seed, flips), size)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=0, max_size=8192))
def test_parsers_survive_random_bytes(data: bytes) -> None:
    exercise(data + bytes(max(0, 4096 - len(data))))


def test_unmutated_seeds_parse(seeds: dict[str, tuple[bytes, int]]) -> None:
    """The seeds are what they should be, so the mutations start from real metadata."""
    read = lambda d: lambda o, n: d[o : o + n]  # noqa: E731
    for table in ("gpt", "mbr"):
        data, size = seeds[table]
        assert read_layout(read(data), size).table == table
    for kind in ("ext4", "ntfs", "fat16", "fat32", "swap", "ext2"):
        data, size = seeds[kind]
        m = detect(read(data), size)
        assert m is not None and m.info.kind == kind, kind
