"""Small frames are stored compact (`_compact.py`): what a read gives back is exactly what the
same appends give back from Arrow IPC frames, a single-record append costs under 64 bytes on
disk beyond its key and value, and data directories written before compact frames existed
still read."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import crc32c
import pyarrow as pa
import pytest

from hispeed.errors import CorruptLogError
from hispeed.log import EmbeddedLog, Record, TopicPartition, _segment
from hispeed.log._segment import FLAG_COMPACT, MAGIC, Segment
from tests.conftest import LogFactory

OLD_FORMAT = Path(__file__).parent / "data" / "format-v1"


def appends() -> list[list[Record]]:
    """One to 100 records a call: null keys, tombstones, headers (a null header value, an
    empty list), timestamps out of order, empty and large values."""
    out: list[list[Record]] = [
        [Record(b"v", key=b"k", timestamp=5)],
        [Record(None, key=b"k", timestamp=4)],  # a tombstone
        [Record(b"no key", timestamp=9)],
        [Record(b"", key=b"", timestamp=9)],
        [
            Record(b"h1", key=b"a", timestamp=7, headers=[("x", b"1"), ("y", b"")]),
            Record(b"h2", key=b"b", timestamp=3),
        ],
        [Record(b"x" * 70_000, key=b"big", timestamp=1 << 40)],
        [Record("text", key="unicode ✓", timestamp=0)],
    ]
    out.append(
        [Record(f"r{i}".encode(), key=f"k{i % 5}".encode(), timestamp=i) for i in range(100)]
    )
    out.append([Record(f"s{i}".encode(), timestamp=100 - i) for i in range(64)])
    return out


def write(log: EmbeddedLog, topic: str) -> None:
    log.create_topic(topic, 1)
    for records in appends():
        log.append(topic, records)
    # headers with a null value and an empty list of headers, as Arrow gives them
    headers = pa.array([[{"key": "n", "value": None}], []], _segment.RECORD_SCHEMA[4].type)
    log.append(
        topic,
        pa.table(
            {"key": [b"p", b"q"], "value": [b"1", b"2"], "timestamp": [1, 2], "headers": headers}
        ),
    )


def frame_flags(log: EmbeddedLog, topic: str) -> list[int]:
    seg = log.partition(topic, 0).segments[-1]
    return [h.flags for h in seg.frames_from(-1)]


def test_compact_frames_read_back_as_arrow_frames_do(
    log_factory: LogFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = log_factory()
    monkeypatch.setattr(_segment, "COMPACT_MAX_RECORDS", 0)
    write(log, "arrow")
    monkeypatch.setattr(_segment, "COMPACT_MAX_RECORDS", 64)
    write(log, "compact")
    assert set(frame_flags(log, "arrow")) == {0}
    flags = frame_flags(log, "compact")
    assert flags.count(FLAG_COMPACT) == len(flags) - 1  # all but the append of 100
    expected = log.read_table("arrow", 0)
    got = log.read_table("compact", 0)
    assert got.equals(expected)
    # and from every offset, with limits, as a consumer reads
    for offset in range(0, len(expected), 7):
        for limit in (1, 3, 100):
            a = pa.Table.from_batches(log.read("arrow", 0, offset, max_records=limit))
            c = pa.Table.from_batches(log.read("compact", 0, offset, max_records=limit))
            assert c.equals(a), (offset, limit)


def test_a_single_record_append_costs_under_64_bytes(log_factory: LogFactory) -> None:
    """Everything on disk counts: segment files and their indexes."""
    log = log_factory()
    log.create_topic("t", 1)
    n = 2000
    key, value = b"device-0042", b'{"temperature": 21.5, "humidity": 40}'
    for i in range(n):
        log.append("t", [(key, value + str(i % 10).encode())])
    directory = log.partition("t", 0).directory
    on_disk = sum(p.stat().st_size for p in directory.glob("*.seg")) + sum(
        p.stat().st_size for p in directory.glob("*.idx")
    )
    overhead = (on_disk - n * (len(key) + len(value) + 1)) / n
    assert overhead < 64
    assert len(log.read_table("t", 0)) == n


def test_runs_of_small_frames_read_as_one_batch(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 1)
    for i in range(500):
        log.append("t", [(b"k", f"{i}".encode())])
    batches = log.read("t", 0, 0)
    assert len(batches) == 1
    assert batches[0].column("value").to_pylist() == [f"{i}".encode() for i in range(500)]
    assert [b.num_rows for b in log.read("t", 0, 10, max_records=5)] == [5]


def test_compacted_small_frames_keep_their_offsets(log_factory: LogFactory) -> None:
    """Compaction leaves gaps between offsets: a compact frame stores them."""
    log = log_factory()
    log.create_topic("c", 1, {"cleanup.policy": "compact"})
    for i in range(30):
        log.append("c", [(f"k{i % 4}".encode(), f"v{i}".encode())])
    log.roll("c")
    log.run_maintenance()
    table = log.read_table("c", 0)
    assert table.column("offset").to_pylist() == [26, 27, 28, 29]
    assert table.column("value").to_pylist() == [b"v26", b"v27", b"v28", b"v29"]
    seg = log.partition("c", 0).segments[0]
    assert [h.flags for h in seg.frames_from(-1)] == [FLAG_COMPACT]
    log.verify()


def test_a_directory_written_before_compact_frames_reads(
    log_factory: LogFactory, tmp_path: Path
) -> None:
    """tests/log/data/format-v1: written by hispeed before this change (Arrow IPC frames
    only, a transaction log left behind)."""
    data_dir = tmp_path / "old"
    shutil.copytree(OLD_FORMAT, data_dir)
    log = log_factory(data_dir)
    before = log.verify()
    assert before == 41  # 40 records and a committed offset
    rows = []
    for p in (0, 1):
        t = log.read_table("t", p)
        rows += list(
            zip(
                t.column("key").to_pylist(),
                t.column("value").to_pylist(),
                t.column("timestamp").to_pylist(),
                t.column("headers").to_pylist(),
                strict=True,
            )
        )
    expected = [
        (b"a", b"v0", 1000, None),
        (b"b", None, 1001, [{"key": "h", "value": b"x"}, {"key": "n", "value": b"y"}]),
        (None, b"v2", 1002, None),
    ] + [(f"k{i}".encode(), f"v{i}".encode(), 2000 + i, None) for i in range(3, 40)]
    assert sorted(rows, key=repr) == sorted(expected, key=repr)
    assert log.committed_offsets("g") == {TopicPartition("t", 0): 1}
    # new appends go in compact frames after the old ones, and all of it reads
    end = log.offsets("t", 0)[1]
    log.append("t", [(b"new", b"compact")], partition=0)
    assert log.read_table("t", 0, end).column("value").to_pylist() == [b"compact"]
    assert frame_flags(log, "t")[0] == 0
    assert frame_flags(log, "t")[-1] == FLAG_COMPACT
    log.close()
    again = log_factory(data_dir)
    assert again.read_table("t", 0, end).column("value").to_pylist() == [b"compact"]
    assert again.verify() == before + 1


def test_a_compact_frame_that_disagrees_with_its_header_is_damage(
    log_factory: LogFactory, tmp_path: Path
) -> None:
    """A frame whose CRC32C holds but whose payload and header disagree (a bug, not a
    flipped byte) is reported as damage, never read as other records."""
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    log.create_topic("t", 1)
    log.append("t", [(b"k", b"1")])
    part = log.partition("t", 0)
    batch = pa.RecordBatch.from_pylist(
        [{"offset": 1, "timestamp": 5, "key": b"k", "value": b"2", "headers": None}],
        schema=_segment.RECORD_SCHEMA,
    )
    _header, payload = _segment.encode_frame(batch, None)
    # a header for offsets 1 and 2 (it agrees with itself), over a payload of one record
    tail = _segment.HEADER.pack(MAGIC, len(payload), 0, 1, 2, 2, 5, FLAG_COMPACT)[12:]
    crc = crc32c.crc32c(payload, value=crc32c.crc32c(tail))
    forged = MAGIC + struct.pack("<II", len(payload), crc) + tail
    part.write_frame(forged, payload, 3)
    part.visible_end = 3
    with pytest.raises(CorruptLogError, match="compact frame holds 1 records; its header says 2"):
        log.read_table("t", 0)
    assert log.read("t", 0, 0, max_records=1)[0].column("value").to_pylist() == [b"1"]
    seg: Segment = part.segments[-1]
    assert seg.find_damage(None)[0].first_offset == 1
