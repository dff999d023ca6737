"""What only the embedded log has, so tested on it alone: its segment files, fsync policies,
the lock on its data directory, retention by deleting segments, compaction when
`run_maintenance` says (Kafka's cleaner compacts on its own schedule, never in the active
segment, and Kafka's segments are at least 1 MiB), and recovery from a crash in the middle of
a transaction's commit. Everything the Log interface promises is tested on every backend, the
embedded log and Kafka, in test_log.py (and test_model.py)."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from hispeed.errors import (
    ConfigError,
    DataDirLockedError,
    OffsetOutOfRangeError,
)
from hispeed.log import EmbeddedLog, FsyncPolicy, Record, TopicPartition, partition_for_key
from tests.conftest import LogFactory
from tests.log.conftest import values

# -- segment files ---------------------------------------------------------------------------


def test_data_survives_reopen(log_factory: LogFactory, tmp_path: Path) -> None:
    log = log_factory(tmp_path / "d")
    log.create_topic("t", 2, {"segment.bytes": "600"})
    for i in range(50):
        log.append("t", [(f"k{i}", f"value-{i}")])
    before = [values(log, "t", p) for p in range(2)]
    log.close()
    log = log_factory(tmp_path / "d")
    assert [values(log, "t", p) for p in range(2)] == before
    assert sum(len(v) for v in before) == 50
    assert log.describe_topic("t").partitions[0].segments > 1
    log.append("t", [("k0", "after")])
    assert values(log, "t", partition_for_key(b"k0", 2))[-1] == b"after"


def test_segments_roll_at_segment_bytes(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 1, {"segment.bytes": "1500"})
    for i in range(40):
        log.append("t", [(b"k", b"x" * 200 + str(i).encode())])
    info = log.describe_topic("t").partitions[0]
    assert info.segments >= 5
    assert len(values(log, "t")) == 40
    assert log.read("t", 0, 33, max_records=1)[0].column("offset")[0].as_py() == 33


# -- fsync and the directory lock ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode", "interval"),
    [
        ("always", "always", 0),
        ("never", "never", 0),
        ("250ms", "interval", 250),
        ("2s", "interval", 2000),
        ("100", "interval", 100),
    ],
)
def test_fsync_policies_parse(text: str, mode: str, interval: int) -> None:
    policy = FsyncPolicy.parse(text)
    assert (policy.mode, policy.interval_ms) == (mode, interval)


def test_bad_fsync_policy() -> None:
    with pytest.raises(ConfigError, match="'sometimes'"):
        FsyncPolicy.parse("sometimes")


@pytest.mark.parametrize("policy", ["always", "20ms", "never"])
def test_each_fsync_policy_appends(log_factory: LogFactory, policy: str) -> None:
    log = log_factory(fsync=policy)
    log.create_topic("t")
    log.append("t", [(b"k", b"v")])  # readable once append returns, whatever the policy
    assert values(log, "t") == [b"v"]


def _try_open(path: str, queue: multiprocessing.Queue[str]) -> None:
    try:
        EmbeddedLog(path, cleaner_interval_s=None).close()
        queue.put("opened")
    except DataDirLockedError as e:
        queue.put(str(e))


def test_a_second_process_cannot_open_the_directory(log_factory: LogFactory) -> None:
    log = log_factory()
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    proc = ctx.Process(target=_try_open, args=(str(log.data_dir), queue))
    proc.start()
    message = queue.get(timeout=60)
    proc.join()
    assert "is in use by another hispeed process" in message
    assert "--data-dir" in message


def test_the_directory_opens_again_after_close(log_factory: LogFactory, tmp_path: Path) -> None:
    log_factory(tmp_path / "d").close()
    log_factory(tmp_path / "d").create_topic("t")


# -- retention (by deleting whole segments) --------------------------------------------------


def test_retention_by_time_drops_old_segments(log_factory: LogFactory) -> None:
    now = [1_000_000]
    log = log_factory(clock=lambda: now[0])
    log.create_topic("t", 1, {"retention.ms": "1000", "segment.bytes": "1024"})
    for i in range(20):
        log.append("t", [Record(b"x" * 300, timestamp=now[0] + i)])
    now[0] += 500
    assert log.run_maintenance()["segments_deleted"] == 0
    now[0] += 5000
    log.append("t", [Record(b"new", timestamp=now[0])])
    assert log.run_maintenance()["segments_deleted"] > 0
    start, _end = log.offsets("t", 0)
    assert start > 0
    assert values(log, "t", 0, start)[-1] == b"new"
    with pytest.raises(OffsetOutOfRangeError):
        log.read("t", 0, 0)


def test_retention_by_bytes(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 1, {"retention.bytes": "5000", "segment.bytes": "1500"})
    for _ in range(60):
        log.append("t", [(b"k", b"y" * 200)])
    log.run_maintenance()
    info = log.describe_topic("t").partitions[0]
    assert info.size_bytes <= 5000 + 1500
    assert info.start_offset > 0
    assert info.end_offset == 60
    assert len(values(log, "t", 0, info.start_offset)) == 60 - info.start_offset


def test_retention_survives_restart(log_factory: LogFactory, tmp_path: Path) -> None:
    log = log_factory(tmp_path / "d")
    log.create_topic("t", 1, {"retention.bytes": "2000", "segment.bytes": "1000"})
    for _ in range(30):
        log.append("t", [(b"k", b"z" * 200)])
    log.run_maintenance()
    start = log.offsets("t", 0)[0]
    log.close()
    assert log_factory(tmp_path / "d").offsets("t", 0) == (start, 30)


# -- compaction (run by `roll` and `run_maintenance`) -----------------------------------------


def test_compaction_keeps_the_latest_value_per_key(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 1, {"cleanup.policy": "compact", "segment.bytes": "2048"})
    for i in range(100):
        log.append("t", [(f"k{i % 7}", f"v{i}")])
    log.roll("t")
    removed = log.run_maintenance()["records_compacted"]
    assert removed == 93
    table = log.read_table("t", 0)
    assert {
        k: v for k, v in zip(table.column("key").to_pylist(), values(log, "t"), strict=True)
    } == {
        f"k{j}".encode(): f"v{max(i for i in range(100) if i % 7 == j)}".encode() for j in range(7)
    }
    offsets = table.column("offset").to_pylist()
    assert offsets == sorted(offsets)
    assert offsets[-1] == 99
    # reading from an offset that compaction removed gives the next record that remains
    assert log.read("t", 0, 0, max_records=1)[0].column("offset")[0].as_py() == offsets[0]


def test_compaction_drops_tombstones_after_the_delay(log_factory: LogFactory) -> None:
    now = [10_000_000]
    log = log_factory(clock=lambda: now[0])
    log.create_topic("t", 1, {"cleanup.policy": "compact", "delete.retention.ms": "1000"})
    log.append("t", [Record(b"v", b"a", timestamp=now[0]), Record(b"v", b"b", timestamp=now[0])])
    log.append("t", [Record(None, b"a", timestamp=now[0])])
    log.roll("t")
    log.run_maintenance()
    assert log.read_table("t", 0).column("value").to_pylist() == [b"v", None]  # kept for now
    now[0] += 2000
    log.append("t", [Record(b"w", b"c", timestamp=now[0])])
    log.roll("t")
    log.run_maintenance()
    table = log.read_table("t", 0)
    assert table.column("key").to_pylist() == [b"b", b"c"]


def test_compaction_survives_restart(log_factory: LogFactory, tmp_path: Path) -> None:
    log = log_factory(tmp_path / "d")
    log.create_topic("t", 1, {"cleanup.policy": "compact", "segment.bytes": "1024"})
    for i in range(50):
        log.append("t", [(f"k{i % 3}", f"v{i}")])
    log.roll("t")
    log.run_maintenance()
    before = log.read_table("t", 0)
    log.close()
    log = log_factory(tmp_path / "d")
    assert log.read_table("t", 0).equals(before)
    assert log.verify() >= 3


def test_appends_go_on_while_compaction_runs(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 1, {"cleanup.policy": "compact", "segment.bytes": "65536"})
    keys = [f"key-{i % 500}".encode() for i in range(20_000)]
    for start in range(0, len(keys), 1000):
        log.append("t", [(k, b"x" * 50) for k in keys[start : start + 1000]])
    log.roll("t")
    stop = threading.Event()
    appended = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            log.append("t", [(f"new-{i}".encode(), b"n")])
            appended.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        log.run_maintenance()
    finally:
        stop.set()
        thread.join()
    assert appended, "no append completed while compaction ran"
    table = log.read_table("t", 0)
    got = table.column("key").to_pylist()
    assert sorted(set(got) - {f"new-{i}".encode() for i in appended}) == sorted(set(keys))
    assert len([k for k in got if k.startswith(b"new-")]) == len(appended)


# -- recovery of a transaction's commit (its write-ahead record) -----------------------------


class _Crash(BaseException):
    pass


@pytest.mark.parametrize("point", ["after-wal", "after-first-part"])
def test_a_transaction_interrupted_after_its_commit_record_completes_on_recovery(
    log_factory: LogFactory, tmp_path: Path, point: str
) -> None:
    log = log_factory(tmp_path / "d")
    log.create_topic("a")
    log.create_topic("b")

    def crash(at: str) -> None:
        if at == point:
            raise _Crash(at)

    log._crash_hook = crash
    txn = log.transaction()
    txn.append("a", [(b"k", b"A")])
    txn.append("b", [(b"k", b"B")])
    txn.commit_offsets("g", {TopicPartition("a", 0): 1})
    with pytest.raises(_Crash):
        txn.commit()
    log._crash_hook = None
    log.close()
    log = log_factory(tmp_path / "d")
    assert values(log, "a") == [b"A"]
    assert values(log, "b") == [b"B"]
    assert log.committed_offsets("g") == {TopicPartition("a", 0): 1}


def test_a_torn_commit_record_means_the_transaction_never_happened(
    log_factory: LogFactory, tmp_path: Path
) -> None:
    log = log_factory(tmp_path / "d")
    log.create_topic("a")
    log.append("a", [(b"k", b"before")])
    log._crash_hook = lambda at: (_ for _ in ()).throw(_Crash(at))
    with pytest.raises(_Crash), log.transaction() as txn:
        txn.append("a", [(b"k", b"lost")])
    log._crash_hook = None
    log.close()
    wal = tmp_path / "d" / "log" / "txn.wal"
    wal.write_bytes(wal.read_bytes()[:-10])  # the commit record was cut short by the crash
    # and the partition write never happened: drop what the crash hook let through
    log = log_factory(tmp_path / "d")
    assert values(log, "a") == [b"before"]
