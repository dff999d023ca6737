"""Recovery and corruption: a torn tail is cut off, anything else wrong is reported."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hispeed.errors import CorruptLogError
from hispeed.log import EmbeddedLog
from hispeed.log._segment import HEADER_SIZE, Segment
from tests.conftest import LogFactory


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


@pytest.mark.parametrize("where", ["payload", "length", "magic", "offset field"])
def test_flipped_bytes_in_the_active_segment_are_reported(
    log_factory: LogFactory, tmp_path: Path, where: str
) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    fill(log, 5)
    log.close()
    seg = segment_files(data_dir)[-1]
    second = frame_positions(seg)[1]
    at = {
        "payload": second + HEADER_SIZE + 50,
        "length": second + 4,
        "magic": second,
        "offset field": second + 12,
    }[where]
    flip(seg, at)
    with pytest.raises(CorruptLogError) as err:
        log_factory(data_dir)
    assert str(seg) in str(err.value)
    assert err.value.path == str(seg)
    assert err.value.position == second
    assert f"at byte {second}" in str(err.value)
    assert err.value.offset == 10


def test_flipped_bytes_in_a_closed_segment_are_reported_on_read(
    log_factory: LogFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    fill(log, 30, {"segment.bytes": "4096"})
    log.close()
    closed = segment_files(data_dir)[0]
    positions = frame_positions(closed)
    flip(closed, positions[2] + HEADER_SIZE + 100)
    log = log_factory(data_dir)
    with pytest.raises(CorruptLogError, match="CRC32C mismatch") as err:
        read_all(log)
    assert err.value.path == str(closed)
    assert err.value.position == positions[2]
    assert f"{closed} at byte {positions[2]} (offsets from 20)" in str(err.value)
    with pytest.raises(CorruptLogError):
        log.verify()
    # records before the damage still read
    assert sum(b.num_rows for b in log.read("t", 0, 0, max_records=20)) == 20


def test_a_lost_or_damaged_index_is_rebuilt(log_factory: LogFactory, tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    written = fill(log, 40, {"segment.bytes": "8192", "index.interval.bytes": "0"})
    log.close()
    indexes = sorted(segment_files(data_dir)[0].parent.glob("*.idx"))
    indexes[0].unlink()
    indexes[1].write_bytes(b"\x01" * 24)
    log = log_factory(data_dir)
    assert read_all(log) == written
    assert log.read("t", 0, 205, max_records=1)[0].column("value")[0].as_py() == b"value-20-5"
