"""Used-block maps of filesystems that need recovery, against the filesystem's own replay.

A mounted ext3/ext4 is written (files created and fsync'ed) with the kernel's writeback off, and
its image file copied while it stays mounted: the copy needs journal recovery, and its block
bitmaps on disk miss the newest allocations. The map liferaft reads from the copy must count as
used every block that e2fsck's journal replay of another copy leaves in use. Journals that cannot
be read with certainty (damaged, unknown features) are imaged whole with a note, never a crash.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liferaft.disk.fsmap import ext, jbd2
from liferaft.disk.imaging import make_plan
from tests.conftest import fresh_files, sh, writeback_off

VARIANTS = {
    "ext4": ["mkfs.ext4"],  # 64-bit tags, checksum v3, an extent-mapped journal
    "ext4-32bit-nocsum": ["mkfs.ext4", "-O", "^metadata_csum,^64bit"],
    "ext4-1k": ["mkfs.ext4", "-b", "1024"],
    "ext4-bigalloc": ["mkfs.ext4", "-O", "bigalloc", "-C", "16384"],
    "ext3": ["mkfs.ext3"],  # a block-mapped journal, 32-bit tags, no checksums
}


def used(path: Path, settled: bool) -> tuple[set[int], ext.ExtMap]:
    """Used blocks of the ext filesystem in an image file, by liferaft's map."""
    data = path.read_bytes()
    m = ext.probe(lambda o, n: data[o : o + n], len(data))
    assert m is not None
    bs = m.info.block_size
    free: set[int] = set()
    for off, length in m.free_extents(settled):
        free.update(range(off // bs, (off + length) // bs))
    return set(range(m.info.size // bs)) - free, m


@pytest.fixture
def crashed(tmp_path: Path, loopdev: Callable[..., str], mount: Callable[..., Path], no_writeback: None) -> Callable[[str], Path]:
    """crashed(variant) -> a copy of a mounted, freshly written filesystem's image, taken while it
    stays mounted: what a power cut would leave."""

    def make(variant: str) -> Path:
        img = tmp_path / f"{variant}.img"
        sh("truncate", "-s", "96M", str(img))
        sh(*VARIANTS[variant], "-q", "-F", "-J", "size=8", str(img))
        m = mount(loopdev(img), tmp_path / f"m-{variant}")
        sh("sync")  # mkfs and the mount are on disk: what follows lives in the journal only
        fresh_files(m, 12, 700_000, seed=1)
        copy = tmp_path / f"{variant}.crashed"
        shutil.copyfile(img, copy)
        return copy

    return make


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_map_of_a_filesystem_needing_recovery_holds_every_block_the_replay_uses(
    variant: str, crashed: Callable[[str], Path], tmp_path: Path
) -> None:
    copy = crashed(variant)
    assert "needs_recovery" in sh("dumpe2fs", "-h", str(copy))
    replayed = tmp_path / "replayed.img"
    shutil.copyfile(copy, replayed)
    sh("e2fsck", "-E", "journal_only", "-y", str(replayed), check=False)
    assert "needs_recovery" not in sh("dumpe2fs", "-h", str(replayed))
    truth, _ = used(replayed, settled=True)
    on_disk, _ = used(copy, settled=True)  # the bitmaps on disk alone: the defect
    assert truth - on_disk, "the test needs allocations that only the journal holds"
    mapped, m = used(copy, settled=False)
    assert m.recovery and not m.note
    assert truth <= mapped, f"{len(truth - mapped)} blocks in use after the replay are mapped free"
    assert len(mapped - truth) * m.info.block_size < 1 << 20  # and not much more than the replay
    image = copy.read_bytes()
    plan = make_plan(lambda o, n: image[o : o + n], len(image))
    assert plan.needs_recovery == plan.regions and plan.regions[0].recovery


def test_a_clean_filesystem_is_mapped_from_its_bitmaps_alone(tmp_path: Path) -> None:
    """Unmounted cleanly: no recovery, the same map with or without the journal rule."""
    img = tmp_path / "clean.img"
    sh("truncate", "-s", "64M", str(img))
    sh("mkfs.ext4", "-q", "-F", "-d", "/usr/share/doc/bash", str(img))
    a, m = used(img, settled=False)
    b, _ = used(img, settled=True)
    assert a == b and not m.recovery and not m.note


@pytest.fixture(scope="module")
def crashed_bytes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[bytes, list[int]]]:
    """One crash-consistent ext4 (checksum v3) as bytes, and the byte offsets of its live log's
    first blocks (journal superblock, descriptors, data, commits)."""
    tmp = tmp_path_factory.mktemp("journal")
    img = tmp / "fs.img"
    sh("truncate", "-s", "48M", str(img))
    sh("mkfs.ext4", "-q", "-F", "-J", "size=4", str(img))
    dev = sh("losetup", "-f", "--show", str(img))
    where = tmp / "m"
    where.mkdir()
    try:
        with writeback_off():
            sh("mount", dev, str(where))
            sh("sync")
            fresh_files(where, 6, 300_000, seed=2)
            data = img.read_bytes()
    finally:
        sh("umount", str(where), check=False)
        sh("losetup", "-d", dev, check=False)
    m = ext.probe(lambda o, n: data[o : o + n], len(data))
    assert m is not None and m._journal is not None
    j = m._journal
    blocks = [j._where(0)] + [j._where(n) for n in range(j.start, min(j.start + 24, j.maxlen))]
    yield data, blocks


def _map_or_note(data: bytes) -> tuple[set[tuple[int, int]] | None, str]:
    """The free extents of a damaged image (None when imaged whole) and the note; never raises."""
    plan = make_plan(lambda o, n: data[o : o + n], len(data))
    free = set(plan.free_extents())
    region = plan.regions[0]
    return (free if region.fs is not None and not region.fs.note else None), region.note


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_damaged_journal_is_imaged_whole_with_a_note_or_mapped_safely(
    crashed_bytes: tuple[bytes, list[int]], data: st.DataObject
) -> None:
    image, blocks = crashed_bytes
    disk_free = set(make_plan(lambda o, n: image[o : o + n], len(image), settled=True).free_extents())
    damaged = bytearray(image)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.sampled_from(blocks)) + data.draw(st.integers(0, 4095))
        damaged[at] ^= data.draw(st.integers(1, 255))
    free, note = _map_or_note(bytes(damaged))
    if free is None:
        assert "journal" in note
    else:  # whatever it parsed, it never frees what the disk's own bitmaps hold as used
        free_bytes = sum(n for _, n in free)
        assert free_bytes <= sum(n for _, n in disk_free)


def test_unknown_journal_features_and_damage_are_named(crashed_bytes: tuple[bytes, list[int]]) -> None:
    image, blocks = crashed_bytes
    unknown = bytearray(image)
    struct.pack_into(">I", unknown, blocks[0] + 0x28, struct.unpack_from(">I", image, blocks[0] + 0x28)[0] | 0x8000)
    free, note = _map_or_note(bytes(unknown))
    assert free is None and "unknown journal features 0x8000" in note and "imaged whole" in note
    fast = bytearray(image)
    struct.pack_into(
        ">I", fast, blocks[0] + 0x28, struct.unpack_from(">I", image, blocks[0] + 0x28)[0] | jbd2.INCOMPAT_FAST_COMMIT
    )
    assert "fast commits" in _map_or_note(bytes(fast))[1]
    torn = bytearray(image)  # the first descriptor block of the log: its checksum no longer holds
    torn[blocks[1] + 100] ^= 0xFF
    free, note = _map_or_note(bytes(torn))
    assert free is None and "checksum mismatch" in note
    # an external journal: the superblock names no journal inode
    external = bytearray(image)
    struct.pack_into("<I", external, 1024 + 0xE0, 0)
    free, note = _map_or_note(bytes(external))
    assert free is None and "external journal" in note


def test_a_dirty_ntfs_is_imaged_whole_with_a_note_unless_settled(tmp_path: Path) -> None:
    """An NTFS marked dirty in $Volume (a Windows that did not shut down): its $Bitmap cannot be
    proved complete. A live backup's settled map still uses it."""
    img = tmp_path / "nt.img"
    sh("truncate", "-s", "64M", str(img))
    sh("mkntfs", "-q", "-F", "-Q", str(img))
    data = bytearray(img.read_bytes())

    def region(settled: bool = False) -> tuple[int, str, str]:
        plan = make_plan(lambda o, n: bytes(data[o : o + n]), len(data), settled=settled)
        free = sum(n for _, n in plan.free_extents())
        (r,) = plan.regions
        assert r.fs is not None and r.fs.info.kind == "ntfs"
        return free, r.recovery, r.note

    free, recovery, note = region()
    assert free > 32 << 20 and not recovery and not note  # mkntfs leaves it clean
    cluster = struct.unpack_from("<H", data, 0x0B)[0] * data[0x0D]
    record = struct.unpack_from("<Q", data, 0x30)[0] * cluster + 3 * 1024  # $Volume, 1 KiB records
    at = record + struct.unpack_from("<H", data, record + 0x14)[0]
    while struct.unpack_from("<I", data, at)[0] != 0x70:  # $VOLUME_INFORMATION
        at += struct.unpack_from("<I", data, at + 4)[0]
    flags = at + struct.unpack_from("<H", data, at + 0x14)[0] + 0x0A
    data[flags] |= 0x01  # VOLUME_IS_DIRTY
    free, recovery, note = region()
    assert free == 0 and recovery == "it is marked dirty" and "cannot be proved complete: imaged whole" in note
    free, recovery, note = region(settled=True)
    assert free > 32 << 20 and not recovery
