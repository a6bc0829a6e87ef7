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
