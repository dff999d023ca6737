"""Recovery and corruption: a torn tail is cut off; a damaged frame is kept, reported, and
its offsets are never given again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hispeed.errors import CorruptLogError
from hispeed.log import EmbeddedLog, _segment
from hispeed.log._segment import HEADER_SIZE, Segment
from tests.conftest import LogFactory


@pytest.fixture(autouse=True, params=["arrow", "compact"])
def frame_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both kinds of frame (`fill` writes frames of 10 records): Arrow IPC
    payloads, and compact ones."""
    monkeypatch.setattr(_segment, "COMPACT_MAX_RECORDS", 0 if request.param == "arrow" else 10)
    return str(request.param)


def segment_files(data_dir: Path, topic: str = "t", partition: int = 0) -> list[Path]:
    return sorted((data_dir / "log" / "topics" / topic / str(partition)).glob("*.seg"))


def fill(log: EmbeddedLog, batches: int, config: dict[str, str] | None = None) -> list[bytes]:
    log.create_topic("t", 1, config)
    written = []
    for i in range(batches):
        chunk = [f"value-{i}-{j}".encode() for j in range(10)]
        log.append("t", [(b"k", v) for v in chunk])
        written += chunk
    return written


def frame_positions(path: Path) -> list[int]:
    seg = Segment.open(path, active=False)
    try:
        return [h.position for h in seg.frames_from(-1)]
    finally:
        seg.close()


def flip(path: Path, position: int, count: int = 4) -> None:
    data = bytearray(path.read_bytes())
    for i in range(position, position + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def read_all(log: EmbeddedLog) -> list[bytes]:
    start = log.offsets("t", 0)[0]
    got: list[bytes] = log.read_table("t", 0, start).column("value").to_pylist()
    return got


@pytest.mark.parametrize("keep", [1, 20, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 100])
def test_a_torn_tail_is_truncated(
    log_factory: LogFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture, keep: int
) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    written = fill(log, 5)
    log.close()
    seg = segment_files(data_dir)[-1]
    whole = seg.read_bytes()
    last = frame_positions(seg)[-1]
    # The last append was cut off by a crash after `keep` of its bytes reached the disk.
    seg.write_bytes(whole[: last + keep])
    with caplog.at_level(logging.WARNING):
        log = log_factory(data_dir)
    assert read_all(log) == written[:-10]
    assert "truncating a torn tail" in caplog.text
    assert log.append("t", [(b"k", b"next")]).offsets.tolist() == [40]
    assert read_all(log)[-1] == b"next"


def test_a_zero_filled_tail_is_truncated(log_factory: LogFactory, tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    written = fill(log, 3)
    log.close()
    seg = segment_files(data_dir)[-1]
    last = frame_positions(seg)[-1]
    data = bytearray(seg.read_bytes())
    data[last + HEADER_SIZE :] = bytes(len(data) - last - HEADER_SIZE)  # length written, data not
    seg.write_bytes(bytes(data))
    assert read_all(log_factory(data_dir)) == written[:-10]


@pytest.mark.parametrize("where", ["payload", "offset field"])
def test_a_damaged_middle_frame_of_the_active_segment_is_kept_and_reported(
    log_factory: LogFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    written = fill(log, 5)
    log.close()
    seg = segment_files(data_dir)[-1]
    second = frame_positions(seg)[1]
    flip(seg, {"payload": second + HEADER_SIZE + 50, "offset field": second + 12}[where])
    with caplog.at_level(logging.ERROR):
        log = log_factory(data_dir)  # the other topics and partitions open as ever
    assert f"{seg} at byte {second} (topic 't' partition 0, offsets 10 to 19)" in caplog.text
    with pytest.raises(CorruptLogError) as err:
        read_all(log)
    assert (err.value.path, err.value.position) == (str(seg), second)
    assert (err.value.offset, err.value.last_offset) == (10, 19)
    assert (err.value.topic, err.value.partition) == ("t", 0)
    assert f"at byte {second}" in str(err.value)
    assert "hispeed topic repair t" in str(err.value)
    # a reader past the damage goes on; an append gets a fresh offset
    assert log.read_table("t", 0, 20).column("value").to_pylist() == written[20:]
    assert log.append("t", [(b"k", b"next")]).offsets.tolist() == [50]


@pytest.mark.parametrize("field", [0, 4])  # magic, length: the CRC32C covers the rest
def test_a_damaged_magic_or_length_is_restored(
    log_factory: LogFactory, tmp_path: Path, field: int
) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    written = fill(log, 5)
    log.close()
    seg = segment_files(data_dir)[-1]
    positions = frame_positions(seg)
    flip(seg, positions[1] + field)
    flip(seg, positions[-1] + field)
    assert read_all(log_factory(data_dir)) == written


def test_a_flipped_byte_in_the_last_frame_loses_nothing_silently(
    log_factory: LogFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16, defect 3: recovery took the damaged last frame for a torn write, cut it off
    ("never acknowledged"), gave its offsets again, and a consumer's committed offset past
    them was out of range, so it started over from 0 (30 records became 50)."""
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    fill(log, 5)
    consumer = log.consumer("t", group="g", auto_offset_reset="earliest")
    seen = [r for _ in range(20) for p in consumer.poll(0.05) for r in p.batch.to_pylist()]
    assert len(seen) == 50
    consumer.commit()
    consumer.close()
    log.close()
    seg = segment_files(data_dir)[-1]
    last = frame_positions(seg)[-1]
    flip(seg, last + HEADER_SIZE + 60, count=1)
    with caplog.at_level(logging.WARNING):
        log = log_factory(data_dir)
    assert "never acknowledged" not in caplog.text
    assert "offsets 40 to 49" in caplog.text
    with pytest.raises(CorruptLogError) as err:
        log.read("t", 0, 40)
    assert (err.value.offset, err.value.last_offset) == (40, 49)
    assert log.offsets("t", 0) == (0, 50)  # the end offset did not go back
    assert log.append("t", [(b"k", b"new")]).offsets.tolist() == [50]
    consumer = log.consumer("t", group="g", auto_offset_reset="earliest")
    again = [r for _ in range(20) for p in consumer.poll(0.05) for r in p.batch.to_pylist()]
    consumer.close()
    assert [(r["offset"], r["value"]) for r in again] == [(50, b"new")]


def test_flipped_bytes_in_a_closed_segment_are_reported_on_read(
    log_factory: LogFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    written = fill(log, 30, {"segment.bytes": "4096"})
    log.close()
    closed = segment_files(data_dir)[0]
    positions = frame_positions(closed)
    flip(closed, positions[2] + HEADER_SIZE + 100)
    log = log_factory(data_dir)
    with pytest.raises(CorruptLogError, match="CRC32C mismatch") as err:
        read_all(log)
    assert err.value.path == str(closed)
    assert err.value.position == positions[2]
    where = f"{closed} at byte {positions[2]} (topic 't' partition 0, offsets 20 to 29)"
    assert where in str(err.value)
    with pytest.raises(CorruptLogError):
        log.verify()
    # records before the damage still read, and so do those after it
    assert sum(b.num_rows for b in log.read("t", 0, 0, max_records=20)) == 20
    assert log.read_table("t", 0, 30).column("value").to_pylist() == written[30:]


def test_a_lost_or_damaged_index_is_rebuilt(log_factory: LogFactory, tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    written = fill(log, 40, {"segment.bytes": "2048", "index.interval.bytes": "0"})
    log.close()
    indexes = sorted(segment_files(data_dir)[0].parent.glob("*.idx"))
    indexes[0].unlink()
    indexes[1].write_bytes(b"\x01" * 24)
    log = log_factory(data_dir)
    assert read_all(log) == written
    assert log.read("t", 0, 205, max_records=1)[0].column("value")[0].as_py() == b"value-20-5"
