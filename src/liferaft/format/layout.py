"""A snapshot's disk layout as a typed record: the partition table, its partitions, and what was
imaged of each data partition (docs/design.md, "Chunk map and snapshot").

The snapshot stores it as a free-form JSON object (``Snapshot.layout``), so that fields can be
added without a format change; this is the one place it is read and written. Fields missing from
an older snapshot read as their defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

EXTENDED_MBR_TYPES = frozenset({0x05, 0x0F, 0x85})
"""MBR partition types of an extended partition: a container of logical ones, no filesystem."""
EXTENDED_TYPES = frozenset(f"0x{t:02x}" for t in EXTENDED_MBR_TYPES)
"""The same, as the record writes a type."""
TABLES = ("gpt", "mbr")


TYPE_NAMES = {
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI System",
    "21686148-6449-6e6f-744e-656564454649": "BIOS boot",
    "0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem",
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "Linux root (x86-64)",
    "933ac7e1-2eb4-4f13-b844-0e14e2aef915": "Linux home",
    "bc13c2ff-59e6-4262-a352-b275fd6f7172": "Linux extended boot",
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "Linux swap",
    "e6d6d379-f507-44c2-a23c-238f2a3df928": "Linux LVM",
    "a19d880f-05fc-4d3b-a006-743f0f84911e": "Linux RAID",
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data",
    "e3c9e316-0b5c-4db8-817d-f92df00215ae": "Microsoft reserved",
    "de94bba4-06d1-4d40-a16a-bfd50179d6ac": "Windows recovery",
    "0x01": "FAT12",
    "0x04": "FAT16 <32M",
    "0x05": "Extended",
    "0x06": "FAT16",
    "0x07": "HPFS/NTFS/exFAT",
    "0x0b": "W95 FAT32",
    "0x0c": "W95 FAT32 (LBA)",
    "0x0e": "W95 FAT16 (LBA)",
    "0x0f": "W95 Extended (LBA)",
    "0x27": "Hidden NTFS (recovery)",
    "0x82": "Linux swap",
    "0x83": "Linux",
    "0x85": "Linux extended",
    "0x8e": "Linux LVM",
    "0xee": "GPT protective",
    "0xef": "EFI (FAT)",
    "0xfd": "Linux RAID",
}
"""Partition type names as fdisk shows them: GPT type GUIDs and MBR type bytes."""


def type_name(kind: str) -> str:
    """A partition type's name ('EFI System'); an unknown one as it is recorded."""
    return TYPE_NAMES.get(kind.lower(), kind)


def _build(cls: type[Any], obj: object) -> Any:
    data = obj if isinstance(obj, dict) else {}
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class PartitionRecord:
    number: int = 0
    start: int = 0
    """Bytes from the start of the disk."""
    size: int = 0
    type: str = ""
    """The GPT type GUID, or the MBR type byte as '0x83'."""
    name: str = ""
    uuid: str = ""
    bootable: bool = False

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def extended(self) -> bool:
        return self.type in EXTENDED_TYPES


@dataclass(frozen=True, slots=True)
class RegionRecord:
    """What was imaged of one data partition (number 0: the whole source, without a table)."""

    number: int = 0
    start: int = 0
    size: int = 0
    filesystem: str = ""
    label: str = ""
    uuid: str = ""
    block_size: int = 0
    used: int = 0
    imaged: str = "whole"
    """'used blocks' or 'whole'."""
    note: str = ""
    """Why a parser gave up (then imaged whole)."""
    recovery: str = ""
    """Why the filesystem needs recovery (a journal to replay, a dirty NTFS); '' when clean."""

    @property
    def title(self) -> str:
        """'partition 2 (ext4)', or 'the filesystem' of an image without a partition table."""
        name = f"partition {self.number}" if self.number else "the filesystem"
        return f"{name} ({self.filesystem})" if self.filesystem else name


@dataclass(frozen=True, slots=True)
class DiskLayout:
    table: str = "none"
    """'gpt', 'mbr' or 'none' (a partition or a bare filesystem)."""
    disk_uuid: str = ""
    consistency: str = ""
    """'clean' or 'crash-consistent'; '' in snapshots written before it was recorded."""
    partitions: tuple[PartitionRecord, ...] = ()
    regions: tuple[RegionRecord, ...] = field(default=())

    @property
    def has_table(self) -> bool:
        return self.table in TABLES

    def data_partitions(self) -> list[PartitionRecord]:
        return [p for p in self.partitions if not p.extended]

    def partition(self, number: int) -> PartitionRecord | None:
        """Data partition number (an extended container is none)."""
        return next((p for p in self.data_partitions() if p.number == number), None)

    def region(self, number: int) -> RegionRecord | None:
        return next((r for r in self.regions if r.number == number), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "disk_uuid": self.disk_uuid,
            "consistency": self.consistency,
            "partitions": [asdict(p) for p in self.partitions],
            "regions": [asdict(r) for r in self.regions],
        }

    @classmethod
    def from_dict(cls, obj: object) -> DiskLayout:
        data = obj if isinstance(obj, dict) else {}
        return cls(
            table=str(data.get("table") or "none"),
            disk_uuid=str(data.get("disk_uuid") or ""),
            consistency=str(data.get("consistency") or ""),
            partitions=tuple(_build(PartitionRecord, p) for p in data.get("partitions") or []),
            regions=tuple(_build(RegionRecord, r) for r in data.get("regions") or []),
        )
