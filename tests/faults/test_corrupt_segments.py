"""A flipped byte at every position of a frame (each header field, the payload's first,
middle and last byte), in a middle frame and in the last frame, of the active segment and of a
closed one: what recovery, reads, appends and `repair_topic` do.

What users rely on: a complete frame is never dropped silently (its magic or length, which the
CRC32C does not cover, is restored; anything else is kept, reported with its exact offsets, and
set aside only by a repair that lists them); no offset is ever given twice; a read past the
damage goes on; only a torn tail (an append a crash cut short) is cut off.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hispeed.engine import Engine
from hispeed.errors import CorruptLogError
from hispeed.log import EmbeddedLog, TopicPartition, _segment
from hispeed.log._segment import HEADER_SIZE, Segment
from hispeed.testing.server import RunningServer
from tests.conftest import LogFactory, wait_for

pytestmark = pytest.mark.slow

#: a flipped byte's place in a frame: a header field (see _segment.py), or the payload
FIELDS = {
    "magic": 0,
    "length": 4,
    "crc": 8,
    "base": 12,
    "last": 20,
    "count": 28,
    "max_ts": 32,
    "flags": 40,
    "payload first": HEADER_SIZE,
    "payload middle": None,
    "payload last": -1,
}
#: not covered by the CRC32C, so a frame damaged only there is restored whole
RESTORABLE = ("magic", "length")
BATCHES, PER_BATCH = 6, 10
#: each kind of frame: its COMPACT_MAX_RECORDS (Arrow IPC frames of about 1,000 bytes for a
#: batch of PER_BATCH records, compact ones of about 190)
FRAME_KINDS = {"arrow": 0, "compact": PER_BATCH}


@pytest.fixture(autouse=True, params=list(FRAME_KINDS))
def frame_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both kinds of frame: what recovery and repair do must not depend on it."""
    monkeypatch.setattr(_segment, "COMPACT_MAX_RECORDS", FRAME_KINDS[request.param])
    return str(request.param)


@pytest.fixture
def frame_bytes(frame_kind: str, tmp_path: Path) -> int:
    """The size of one frame of PER_BATCH records, measured (not assumed: the frame layout
    may change, and segment sizes below are counted in frames)."""
    log = EmbeddedLog(tmp_path / "measure")
    try:
        log.create_topic("t", 1)
        log.append("t", [(b"k", f"value-0-{j}".encode()) for j in range(PER_BATCH)])
    finally:
        log.close()
    (frame,) = frames(segments(tmp_path / "measure")[0])
    return frame[1] - frame[0]


@pytest.fixture
def small_segments(frame_bytes: int) -> dict[str, str]:
    """Three frames a segment: offsets 0-29 in a closed segment, 30-59 in the active one."""
    return {"segment.bytes": str(3 * frame_bytes + 64)}


def fill(log: EmbeddedLog, config: dict[str, str] | None) -> list[bytes]:
    log.create_topic("t", 1, config)
    log.create_topic("other", 1)
    written = []
    for i in range(BATCHES):
        chunk = [f"value-{i}-{j}".encode() for j in range(PER_BATCH)]
        log.append("t", [(b"k", v) for v in chunk])
        log.append("other", [(b"k", v) for v in chunk])
        written += chunk
    return written


def segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "log" / "topics" / "t" / "0").glob("*.seg"))


def frames(path: Path) -> list[tuple[int, int, int, int]]:
    """(position, end, first offset, last offset) of each frame."""
    seg = Segment.open(path, active=False)
    try:
        return [(h.position, h.end, h.base, h.last) for h in seg.frames_from(-1)]
    finally:
        seg.close()


def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def values(log: EmbeddedLog, offset: int = 0) -> list[bytes]:
    got: list[bytes] = log.read_table("t", 0, offset).column("value").to_pylist()
    return got


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("frame", ["middle", "last"])
@pytest.mark.parametrize("segment", ["active", "closed"])
def test_a_flipped_byte(
    log_factory: LogFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    segment: str,
    frame: str,
    field: str,
    small_segments: dict[str, str],
) -> None:
    data_dir = tmp_path / "d"
    closed = segment == "closed"
    log = log_factory(data_dir)
    written = fill(log, small_segments if closed else None)
    if closed:
        assert len(segments(data_dir)) == 2
        assert len(frames(segments(data_dir)[0])) == 3
    log.close()
    path = segments(data_dir)[0] if closed else segments(data_dir)[-1]
    position, end, first, last = frames(path)[1 if frame == "middle" else -1]
    at = FIELDS[field]
    flip(path, position + at if at is not None and at >= 0 else (end - 1 if at else end - 100))

    with caplog.at_level(logging.WARNING):
        log = log_factory(data_dir)  # opening never fails for a damaged frame
    assert "never acknowledged" not in caplog.text
    assert log.offsets("t", 0) == (0, len(written))  # the end offset never goes back
    assert log.read_table("other", 0).num_rows == len(written)  # other topics read on
    if field in RESTORABLE and not closed:
        assert f"restored the damaged magic/length field of the frame at byte {position}" in (
            caplog.text
        )
        assert values(log) == written
        assert log.append("t", [(b"k", b"next")]).offsets.tolist() == [len(written)]
        return
    if not closed:  # the active segment is checked whole on recovery: said at once
        assert f"at byte {position} (topic 't' partition 0, offsets {first} to {last})" in (
            caplog.text
        )

    # A read that reaches the damage says exactly where and what; one past it goes on.
    with pytest.raises(CorruptLogError) as err:
        values(log)
    e = err.value
    assert (e.topic, e.partition, e.path, e.position) == ("t", 0, str(path), position)
    assert (e.offset, e.last_offset) == (first, last)
    assert values(log, last + 1) == written[last + 1 :]
    with pytest.raises(CorruptLogError):
        log.verify()
    # No offset is given twice.
    assert log.append("t", [(b"k", b"next")]).offsets.tolist() == [len(written)]
    written.append(b"next")
    log.close()

    log = log_factory(data_dir)
    assert log.repair_topic("t", dry_run=True) != [] or field in RESTORABLE
    assert values(log, last + 1) == written[last + 1 :]  # a dry run changes nothing
    repaired = log.repair_topic("t")
    if field in RESTORABLE:  # a closed segment's header is restored by the repair
        assert repaired == []
        assert values(log) == written
    else:
        assert [(r.first_offset, r.last_offset, r.exact) for r in repaired] == [(first, last, True)]
        kept = Path(repaired[0].quarantine)
        assert kept.stat().st_size == repaired[0].bytes == end - position
        logged = (path.parent / "quarantine.jsonl").read_text().splitlines()
        assert json.loads(logged[0])["offsets_lost"] == last - first + 1
        assert values(log) == written[:first] + written[last + 1 :]
    assert log.repair_topic("t") == []
    assert log.append("t", [(b"k", b"after")]).offsets.tolist() == [len(written)]
    log.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        log = log_factory(data_dir)
    assert caplog.text == ""
    assert values(log)[-2:] == [b"next", b"after"]
    log.verify()


@pytest.mark.parametrize("keep", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 10, -1])
def test_a_torn_tail_is_cut_off_and_reported(
    log_factory: LogFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture, keep: int
) -> None:
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    written = fill(log, None)
    log.close()
    path = segments(data_dir)[-1]
    position, end, first, _last = frames(path)[-1]
    cut = end - 1 if keep < 0 else position + keep
    path.write_bytes(path.read_bytes()[:cut])  # a crash cut the last append short
    with caplog.at_level(logging.WARNING):
        log = log_factory(data_dir)
    assert f"truncating a torn tail of {cut - position} bytes at byte {position}" in caplog.text
    # it was never acknowledged (the append had not returned), so its offsets are free
    assert values(log) == written[:first]
    assert log.append("t", [(b"k", b"next")]).offsets.tolist() == [first]
    assert log.repair_topic("t") == []


def test_the_damage_in_a_long_partition_is_found_and_repaired_exactly(
    log_factory: LogFactory, tmp_path: Path, frame_bytes: int
) -> None:
    """Two damaged frames in one segment, one in another, index entries every frame."""
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    segment_bytes = str(7 * frame_bytes + frame_bytes // 2)  # about seven frames a segment
    log.create_topic("t", 1, {"segment.bytes": segment_bytes, "index.interval.bytes": "0"})
    written = []
    for i in range(40):
        chunk = [f"value-{i}-{j}".encode() for j in range(PER_BATCH)]
        log.append("t", [(b"k", v) for v in chunk])
        written += chunk
    log.close()
    paths = segments(data_dir)
    damaged = [(paths[0], 2), (paths[0], 5), (paths[2], 0)]
    lost = []
    for path, k in damaged:
        position, end, first, last = frames(path)[k]
        flip(path, (position + end) // 2)
        lost.append((first, last))
    log = log_factory(data_dir)
    for first, last in lost:
        with pytest.raises(CorruptLogError) as err:
            log.read("t", 0, first)
        assert (err.value.offset, err.value.last_offset) == (first, last)
        after = log.read("t", 0, last + 1, max_records=1)
        assert after[0].column("value").to_pylist() == written[last + 1 : last + 2]
    repaired = log.repair_topic("t")
    assert [(r.first_offset, r.last_offset) for r in repaired] == lost
    gone = {o for first, last in lost for o in range(first, last + 1)}
    assert values(log) == [v for o, v in enumerate(written) if o not in gone]


def test_ws_topics_says_which_segment_is_corrupt_before_closing(
    server: RunningServer, small_segments: dict[str, str]
) -> None:
    """Issue 16, defect 4: /ws/topics closed with 1011 and no message."""
    log = server.engine.log
    assert isinstance(log, EmbeddedLog)
    written = fill(log, small_segments)
    path = segments(log.data_dir)[0]
    position, end, first, last = frames(path)[1]
    flip(path, (position + end) // 2)  # under the running server: its reads see it
    url = server.url.replace("http", "ws", 1) + "/ws/topics?topics=t&from=beginning"
    with connect(url, open_timeout=5) as ws:
        got = [json.loads(ws.recv(timeout=10)) for _ in range(first)]
        assert [g["offset"] for g in got] == list(range(first))
        error = json.loads(ws.recv(timeout=10))
        assert f"{path} at byte {position}" in error["message"]
        assert f"offsets {first} to {last}" in error["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
    assert "corrupt log segment" in closed.value.rcvd.reason
    # other topics stream on
    url = server.url.replace("http", "ws", 1) + "/ws/topics?topics=other&from=beginning"
    with connect(url, open_timeout=5) as ws:
        assert len([ws.recv(timeout=10) for _ in written]) == len(written)


def test_compaction_goes_on_for_the_other_partitions(
    log_factory: LogFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    small_segments: dict[str, str],
) -> None:
    """A damaged segment of one compacted topic stopped the cleaner's whole pass (every
    topic after it, __consumer_offsets included, stopped being compacted)."""
    data_dir = tmp_path / "d"
    log = log_factory(data_dir)
    for name in ("a-damaged", "b-healthy"):
        log.create_topic(name, 1, {"cleanup.policy": "compact", **small_segments})
        for i in range(BATCHES):
            log.append(name, [(b"same-key", f"v{i}-{j}".encode()) for j in range(PER_BATCH)])
    log.close()
    path = sorted((data_dir / "log" / "topics" / "a-damaged" / "0").glob("*.seg"))[0]
    position, end, _first, _last = frames(path)[1]
    flip(path, (position + end) // 2)
    log = log_factory(data_dir)
    with caplog.at_level(logging.ERROR):
        log.run_maintenance()
        log.run_maintenance()
    assert caplog.text.count(f"compaction skips a-damaged[0]: corrupt log segment {path}") == 1
    assert log.read_table("b-healthy", 0).num_rows < BATCHES * PER_BATCH  # compacted
    assert not list(path.parent.glob("*.cleaned"))


def test_a_query_does_not_start_over_after_a_damaged_last_frame(tmp_path: Path) -> None:
    """Issue 16, defect 3, as users saw it: recovery cut off the source's damaged last frame,
    the query's position was past the end, and it read the topic again from 0."""

    def rows(first: int) -> list[tuple[None, bytes]]:
        return [(None, json.dumps({"v": v}).encode()) for v in range(first, first + PER_BATCH)]

    def caught_up(engine: Engine, offset: int) -> bool:
        log = engine.log
        return any(
            log.committed_offsets(g, "s").get(TopicPartition("s", 0)) == offset
            for g in log.list_groups()
        )

    with Engine(tmp_path, fsync="always") as engine:
        engine.start()
        engine.execute(
            "CREATE STREAM s (v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
            "CREATE STREAM copy WITH (kafka_topic='copy') AS SELECT * FROM s;"
        )
        for first in range(0, 30, PER_BATCH):
            engine.log.append("s", rows(first))
        wait_for(lambda: caught_up(engine, 30), timeout=60)
        assert engine.log.offsets("copy", 0)[1] == 30
    path = sorted((tmp_path / "log" / "topics" / "s" / "0").glob("*.seg"))[-1]
    position, end, _first, _last = frames(path)[-1]
    flip(path, (position + end) // 2)
    with Engine(tmp_path, fsync="always") as engine:
        engine.start()
        engine.log.append("s", rows(30))
        wait_for(lambda: caught_up(engine, 40), timeout=60)
        assert engine.log.offsets("copy", 0)[1] == 40  # not 60: nothing was read twice
