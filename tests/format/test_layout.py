"""The disk layout record: one typed reading of the snapshot's free-form layout object."""

from __future__ import annotations

from liferaft.format.layout import DiskLayout, PartitionRecord, RegionRecord


def test_round_trip_and_the_extended_container_is_no_data_partition() -> None:
    disk = DiskLayout(
        table="mbr",
        disk_uuid="1234abcd",
        consistency="clean",
        partitions=(
            PartitionRecord(1, 1 << 20, 8 << 20, "0x83"),
            PartitionRecord(2, 9 << 20, 20 << 20, "0x05"),
            PartitionRecord(5, 10 << 20, 4 << 20, "0x83"),
        ),
        regions=(RegionRecord(1, 1 << 20, 8 << 20, "ext4", imaged="used blocks"), RegionRecord(5, 10 << 20, 4 << 20)),
    )
    again = DiskLayout.from_dict(disk.to_dict())
    assert again == disk
    assert [p.number for p in again.data_partitions()] == [1, 5]
    assert again.partition(2) is None and again.partition(5) == disk.partitions[2]
    assert again.region(1) is not None and again.region(1).filesystem == "ext4"  # type: ignore[union-attr]
    assert again.has_table


def test_an_older_or_empty_layout_reads_as_defaults() -> None:
    old = DiskLayout.from_dict({"table": "gpt", "partitions": [{"number": 1, "start": 1048576, "size": 4096, "type": "x"}]})
    assert old.consistency == "" and old.regions == ()
    assert old.partitions[0].end == 1048576 + 4096 and not old.partitions[0].bootable
    assert DiskLayout.from_dict({}) == DiskLayout() and not DiskLayout().has_table
    assert DiskLayout.from_dict({"regions": [{"number": 0, "unknown_field": 1}]}).regions == (RegionRecord(),)
