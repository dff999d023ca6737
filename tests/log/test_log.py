"""The Log interface, on every backend (the `log` fixture: embedded, and Kafka).

Where Kafka differs for real, the assertion says so: a Kafka transaction leaves a commit (or
abort) marker at an offset of its own, so end offsets run ahead of the records and offsets
are not contiguous across transactions; describe_topic cannot see Kafka's files (size_bytes
and segments are 0); Kafka compacts on its cleaner's schedule, so compaction itself is tested
on the embedded log only (test_embedded.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hispeed.errors import (
    ConfigError,
    InvalidRecordError,
    LogError,
    OffsetOutOfRangeError,
    TopicExistsError,
    TransactionError,
    UnknownTopicError,
)
from hispeed.log import Consumer, Log, Record, TopicPartition, partition_for_key
from hispeed.log.base import RECORD_SCHEMA
from tests.log.conftest import OpenLog, is_kafka, values

# -- helpers ---------------------------------------------------------------------------------


def polled_values(consumer: Consumer, timeout: float, max_records: int | None = None) -> list[Any]:
    return [v for b in consumer.poll(timeout, max_records) for v in b.batch.column(3).to_pylist()]


def drain(log: Log, consumer: Consumer, timeout: float = 0.1) -> list[Any]:
    """What the consumer has to read now. The embedded log gives it all in one poll; a Kafka
    consumer joins its group and fetches partition by partition, so polls until caught up."""
    got = polled_values(consumer, timeout)
    deadline = time.monotonic() + 30
    while is_kafka(log) and not consumer.caught_up() and time.monotonic() < deadline:
        got += polled_values(consumer, 0.1)
    return got


def settle(log: Log, consumers: Sequence[Consumer], check: Callable[[], bool]) -> list[Any]:
    """The embedded log's groups rebalance at once, so `check()` holds right away; a Kafka
    group rebalances as its members poll: poll them until it holds. Returns what was polled."""
    polled: list[Any] = []
    deadline = time.monotonic() + 30
    while not check():
        assert is_kafka(log), "the embedded log rebalances at once"
        assert time.monotonic() < deadline, "the group did not settle within 30 s"
        for consumer in consumers:
            polled += polled_values(consumer, 0.05)
    return polled


def readable(log: Log, topic: str, partitions: int = 1) -> int:
    """How many records a reader sees in the topic."""
    return sum(len(log.read_table(topic, p, log.offsets(topic, p)[0])) for p in range(partitions))


# -- topics ----------------------------------------------------------------------------------


def test_create_list_describe_delete(log: Log) -> None:
    info = log.create_topic("orders", 3, {"retention.ms": "60000"})
    assert [p.partition for p in info.partitions] == [0, 1, 2]
    assert info.config.retention_ms == 60000
    assert log.describe_topic("orders").config.retention_ms == 60000
    assert log.list_topics() == ["orders"]
    if not is_kafka(log):  # Kafka's own internal topics are outside the test's prefix
        assert "__consumer_offsets" in log.list_topics(internal=True)
    with pytest.raises(TopicExistsError, match="already exists"):
        log.create_topic("orders")
    assert log.create_topic("orders", exist_ok=True).name == "orders"
    log.delete_topic("orders")
    assert log.list_topics() == []
    with pytest.raises(UnknownTopicError, match="'orders' does not exist"):
        log.describe_topic("orders")
    with pytest.raises(UnknownTopicError, match="'orders' does not exist"):
        log.delete_topic("orders")


@pytest.mark.parametrize("name", ["", "a/b", "..", "x" * 250, "spaces here"])
def test_invalid_topic_names(log: Log, name: str) -> None:
    with pytest.raises(LogError, match="invalid topic name"):
        log.create_topic(name)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"retention.mss": 1}, "unknown topic config 'retention.mss'"),
        ({"cleanup.policy": "shred"}, "cleanup.policy cannot be 'shred'"),
        ({"compression.type": "gzip"}, "none, lz4 or zstd"),
        ({"retention.ms": "soon"}, "must be a whole number"),
    ],
)
def test_invalid_topic_configs(log: Log, config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        log.create_topic("t", 1, config)
    assert log.list_topics() == []


def test_a_deleted_topic_can_be_recreated_empty(log: Log) -> None:
    log.create_topic("t")
    log.append("t", [(b"k", b"v")])
    log.delete_topic("t")
    log.create_topic("t")
    assert log.offsets("t", 0) == (0, 0)


# -- appending and reading -------------------------------------------------------------------


def test_append_returns_offsets_and_reads_back_everything(log: Log) -> None:
    log.create_topic("t")
    result = log.append(
        "t",
        [
            Record(b"v0", b"k0", timestamp=1000, headers=[("source", b"a"), ("n", "1")]),
            Record("v1", "k1", timestamp=2000),
            Record(None, b"k0", timestamp=3000),  # tombstone
            Record(b"v3"),  # no key
        ],
    )
    assert result.pairs() == [(0, 0), (0, 1), (0, 2), (0, 3)]
    table = log.read_table("t", 0)
    assert table.schema == RECORD_SCHEMA
    assert table.to_pylist() == [
        {
            "offset": 0,
            "timestamp": 1000,
            "key": b"k0",
            "value": b"v0",
            "headers": [{"key": "source", "value": b"a"}, {"key": "n", "value": b"1"}],
        },
        {"offset": 1, "timestamp": 2000, "key": b"k1", "value": b"v1", "headers": None},
        {"offset": 2, "timestamp": 3000, "key": b"k0", "value": None, "headers": None},
        {
            "offset": 3,
            "timestamp": table.column("timestamp")[3].as_py(),
            "key": None,
            "value": b"v3",
            "headers": None,
        },
    ]
    assert abs(table.column("timestamp")[3].as_py() - time.time() * 1000) < 60_000


def test_append_arrow_batch_and_read_from_the_middle(log: Log) -> None:
    log.create_topic("t")
    n = 25_000
    batch = pa.record_batch(
        {
            "key": pa.array([f"k{i}".encode() for i in range(n)]),
            "value": pa.array([f"v{i}".encode() for i in range(n)]),
            "timestamp": pa.array(np.arange(n, dtype=np.int64)),
        }
    )
    for _ in range(3):
        log.append("t", batch, partition=0)
    assert log.offsets("t", 0) == (0, 3 * n)
    got = log.read("t", 0, 30_007, max_records=10)
    rows = pa.Table.from_batches(got).to_pylist()
    assert [r["offset"] for r in rows] == list(range(30_007, 30_017))
    assert rows[0]["value"] == b"v5007"
    assert log.read("t", 0, 3 * n) == []
    everything = log.read_table("t", 0, 70_000)
    assert everything.column("offset").to_pylist() == list(range(70_000, 3 * n))


def test_read_stops_near_max_bytes(log: Log) -> None:
    log.create_topic("t")
    for i in range(10):
        log.append("t", [(b"k", f"{i:03}".encode() * 40) for _ in range(100)])
    got = pa.Table.from_batches(log.read("t", 0, 5, max_bytes=2000))
    assert 1 <= got.num_rows < 995  # what one read gives stays near the limit
    assert got.column("offset").to_pylist() == list(range(5, 5 + got.num_rows))
    one = pa.Table.from_batches(log.read("t", 0, 7, max_bytes=1))
    assert one.num_rows >= 1  # at least one record, whatever max_bytes says
    assert one.column("offset")[0].as_py() == 7
    both = pa.Table.from_batches(log.read("t", 0, 990, max_records=3, max_bytes=1 << 20))
    assert both.column("offset").to_pylist() == [990, 991, 992]


def test_wait_wakes_up_when_something_is_appended(log: Log) -> None:
    log.create_topic("t")
    assert log.wait(0.05) is False

    def in_a_transaction() -> None:
        with log.transaction() as txn:
            txn.append("t", [(b"k", b"w")])

    for append in (lambda: log.append("t", [(b"k", b"v")]), in_a_transaction):
        timer = threading.Timer(0.2, append)
        started = time.monotonic()
        timer.start()
        assert log.wait(5) is True
        assert time.monotonic() - started < 2
        timer.join()
    assert readable(log, "t") == 2


def test_read_outside_the_partition_is_a_clear_error(log: Log) -> None:
    log.create_topic("t")
    log.append("t", [(None, b"x")])
    with pytest.raises(OffsetOutOfRangeError, match=r"holds offsets 0 to 0"):
        log.read("t", 0, 5)
    with pytest.raises(LogError, match="partitions 0 to 0; there is no 3"):
        log.read("t", 3, 0)
    with pytest.raises(UnknownTopicError, match="'nope' does not exist"):
        log.read("nope", 0, 0)
    with pytest.raises(LogError, match="partitions 0 to 0; there is no 3"):
        log.offsets("t", 3)
    with pytest.raises(UnknownTopicError, match="'nope' does not exist"):
        log.offsets("nope", 0)
    assert "nope" not in log.list_topics()


def test_keys_land_on_kafkas_partitions(log: Log) -> None:
    log.create_topic("t", 6)
    keys = [f"user-{i}".encode() for i in range(200)]
    result = log.append("t", [(k, b"x") for k in keys])
    assert result.partitions.tolist() == [partition_for_key(k, 6) for k in keys]
    for p in range(6):
        table = log.read_table("t", p)
        assert all(partition_for_key(k, 6) == p for k in table.column("key").to_pylist())
        assert table.column("offset").to_pylist() == list(range(table.num_rows))


def test_null_keys_of_a_batch_go_together_and_take_turns(log: Log) -> None:
    log.create_topic("t", 3)
    first = log.append("t", [(None, b"a"), (None, b"b")])
    second = log.append("t", [(None, b"c")])
    assert len(set(first.partitions.tolist())) == 1
    assert first.partitions[0] != second.partitions[0]


def test_empty_append(log: Log) -> None:
    log.create_topic("t")
    assert len(log.append("t", [])) == 0
    assert log.offsets("t", 0) == (0, 0)


def test_bad_records_are_refused_whole(log: Log) -> None:
    log.create_topic("t")
    with pytest.raises(InvalidRecordError, match="record 1: expected a Record"):
        log.append("t", [(b"k", b"v"), 42])
    with pytest.raises(InvalidRecordError, match="needs a 'value' column"):
        log.append("t", pa.record_batch({"key": [b"k"]}))
    assert log.offsets("t", 0) == (0, 0)
    with pytest.raises(UnknownTopicError):
        log.append("nope", [(b"k", b"v")])
    with pytest.raises(LogError, match="partitions 0 to 0; there is no 1"):
        log.append("t", [(b"k", b"v")], partition=1)
    assert log.offsets("t", 0) == (0, 0)
    assert "nope" not in log.list_topics()


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_compression_round_trips(log: Log, compression: str) -> None:
    log.create_topic("t", 1, {"compression.type": compression})
    assert log.describe_topic("t").config.compression_type == compression
    payload = [(f"key-{i % 10}", b"the same words again and again " * 4) for i in range(5000)]
    log.append("t", payload)
    assert values(log, "t") == [v for _, v in payload]
    if not is_kafka(log):  # Kafka's file sizes are not in describe_topic (0)
        size = log.describe_topic("t").partitions[0].size_bytes
        raw = sum(len(v) for _, v in payload)
        assert size > raw if compression == "none" else size < raw / 5


def test_compacted_topics_need_keys(log: Log) -> None:
    log.create_topic("t", 1, {"cleanup.policy": "compact"})
    assert log.describe_topic("t").config.compacts
    with pytest.raises(InvalidRecordError, match="compacted, so every record needs a key"):
        log.append("t", [(None, b"v")])
    log.append("t", [(b"a", b"1"), (b"a", b"2"), (b"b", None)])
    assert values(log, "t") == [b"1", b"2", None]  # until compaction, every record is there


def test_the_data_is_there_for_the_next_log(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", 2)
    log.append("t", [(f"k{i}", f"value-{i}") for i in range(50)])
    before = [values(log, "t", p) for p in range(2)]
    log.close()
    log = open_log()
    assert log.list_topics() == ["t"]
    assert [values(log, "t", p) for p in range(2)] == before
    log.append("t", [("k0", "after")])
    assert values(log, "t", partition_for_key(b"k0", 2))[-1] == b"after"


# -- consumer groups -------------------------------------------------------------------------


def test_commit_and_read_committed_offsets(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", 2)
    assert log.committed_offsets("g") == {}
    log.commit_offsets("g", {TopicPartition("t", 0): 5, TopicPartition("t", 1): 7})
    log.commit_offsets("g", {TopicPartition("t", 0): 6})
    assert log.committed_offsets("g") == {TopicPartition("t", 0): 6, TopicPartition("t", 1): 7}
    assert log.list_groups() == ["g"]
    log.close()
    log = open_log()
    assert log.committed_offsets("g", "t") == {TopicPartition("t", 0): 6, TopicPartition("t", 1): 7}
    assert log.committed_offsets("g", "other") == {}


def test_consumer_reads_commits_and_resumes(log: Log) -> None:
    log.create_topic("t", 3)
    log.append("t", [(f"k{i}", f"v{i}") for i in range(30)])
    with log.consumer("t", group="g", auto_offset_reset="earliest") as consumer:
        consumer.assignment()  # a Kafka group member waits for its partitions here
        got = polled_values(consumer, 0.1, max_records=12)
        while is_kafka(log) and len(got) < 12:  # Kafka fetches partition by partition
            got += polled_values(consumer, 0.1, max_records=12 - len(got))
        assert len(got) == 12
        consumer.commit()
    with log.consumer("t", group="g") as consumer:
        rest = drain(log, consumer)
    assert sorted(got + rest) == sorted(f"v{i}".encode() for i in range(30))


def test_latest_reset_skips_old_records(log: Log) -> None:
    log.create_topic("t")
    log.append("t", [(b"k", b"old")])
    with log.consumer("t", group="g", auto_offset_reset="latest") as consumer:
        # "latest" is the end when the partition is assigned: on Kafka, once the group has
        # given it (assignment() waits for that)
        assert consumer.assignment() == [TopicPartition("t", 0)]
        assert consumer.poll(0.05) == []
        log.append("t", [(b"k", b"new")])
        assert [b.batch.column(3).to_pylist() for b in consumer.poll(5)] == [[b"new"]]


def test_poll_wakes_up_when_data_arrives(log: Log) -> None:
    log.create_topic("t")
    with log.consumer("t", group="g") as consumer:
        consumer.assignment()
        consumer.poll(0)
        timer = threading.Timer(0.2, lambda: log.append("t", [(b"k", b"late")]))
        timer.start()
        started = time.monotonic()
        polled = consumer.poll(5)
        timer.join()
    assert polled
    assert polled[0].batch.column(3).to_pylist() == [b"late"]
    assert time.monotonic() - started < 2


def test_group_members_split_partitions(log: Log) -> None:
    log.create_topic("t", 4)
    a = log.consumer("t", group="g", auto_offset_reset="earliest")
    assert len(a.assignment()) == 4
    b = log.consumer("t", group="g", auto_offset_reset="earliest")

    def split() -> bool:
        first, second = a.assignment(), b.assignment()
        return len(first) == len(second) == 2 and sorted(first + second) == [
            TopicPartition("t", p) for p in range(4)
        ]

    assert settle(log, [a, b], split) == []
    log.append("t", [(f"k{i}", f"v{i}") for i in range(40)])
    by_a, by_b = drain(log, a), drain(log, b)
    assert sorted(by_a + by_b) == sorted(f"v{i}".encode() for i in range(40))
    assert {partition_for_key(f"k{v.decode()[1:]}".encode(), 4) for v in by_a} == {
        tp.partition for tp in a.assignment()
    }
    a.commit()
    b.close()  # b read its half but did not commit: a reads it again
    again = settle(log, [a], lambda: len(a.assignment()) == 4)
    assert sorted(again + drain(log, a)) == sorted(by_b)
    a.close()


def test_a_closing_member_hands_its_partitions_over_where_it_committed(log: Log) -> None:
    log.create_topic("t", 2)
    a = log.consumer("t", group="g", auto_offset_reset="earliest")
    a.assignment()
    b = log.consumer("t", group="g", auto_offset_reset="earliest")
    assert settle(log, [a, b], lambda: len(a.assignment()) == len(b.assignment()) == 1) == []
    (tp_b,) = b.assignment()
    log.append("t", [(b"k", f"v{i}") for i in range(10)], partition=tp_b.partition)
    b.seek(tp_b, 3)
    b.commit()  # b leaves having read three records of its partition
    b.close()
    got = settle(log, [a], lambda: len(a.assignment()) == 2)
    assert got + drain(log, a) == [f"v{i}".encode() for i in range(3, 10)]
    assert a.position(tp_b) == 10
    a.close()


def test_pattern_subscription_follows_new_topics(log: Log) -> None:
    log.create_topic("device1")
    log.create_topic("weather")
    with log.consumer("^device.*", group="web", auto_offset_reset="earliest") as consumer:
        assert consumer.assignment() == [TopicPartition("device1", 0)]
        log.create_topic("device2")
        log.append("device2", [(b"message", b"{}")])
        log.append("weather", [(b"message", b"{}")])
        polled = consumer.poll(15 if is_kafka(log) else 1)  # Kafka looks for new topics each s
        assert [b.partition for b in polled] == [TopicPartition("device2", 0)]
        assert sorted(consumer.assignment()) == [
            TopicPartition("device1", 0),
            TopicPartition("device2", 0),
        ]


def test_pattern_subscription_without_a_group(log: Log) -> None:
    log.create_topic("device1")
    log.append("device1", [(b"k", b"old")])
    with log.consumer("^device.*") as consumer:  # latest: what device1 gets from now on
        assert consumer.assignment() == [TopicPartition("device1", 0)]
        log.create_topic("device2")
        log.append("device2", [(b"k", b"first")])  # a new topic is read from its start
        log.append("device1", [(b"k", b"new")])
        got = set(polled_values(consumer, 5))
        deadline = time.monotonic() + 15
        while len(got) < 2 and time.monotonic() < deadline:
            got |= set(polled_values(consumer, 0.2))
        assert got == {b"first", b"new"}


def test_consumer_errors(log: Log) -> None:
    log.create_topic("t")
    with pytest.raises(UnknownTopicError, match="'nope' does not exist"):
        log.consumer("nope", group="g")
    with pytest.raises(ConfigError, match="earliest or latest"):
        log.consumer("t", auto_offset_reset="middle")
    with log.consumer("t") as alone:
        with pytest.raises(LogError, match="without a group"):
            alone.commit()
        with pytest.raises(LogError, match=r"t\[5\] is not assigned"):
            alone.position(TopicPartition("t", 5))
    with pytest.raises(LogError, match="closed"):
        alone.poll(0)
    assert "nope" not in log.list_topics()


# -- transactions ----------------------------------------------------------------------------


def test_transaction_commits_appends_and_offsets_together(log: Log) -> None:
    log.create_topic("in", 1)
    log.create_topic("out", 2)
    with log.transaction() as txn:
        txn.append("out", [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
        txn.commit_offsets("q", {TopicPartition("in", 0): 42})
        assert sum(log.offsets("out", p)[1] for p in range(2)) == 0  # nothing visible yet
        assert readable(log, "out", 2) == 0
        assert log.committed_offsets("q") == {}
    assert readable(log, "out", 2) == 3
    if not is_kafka(log):  # on Kafka, each partition's end is one past its commit marker
        assert sum(log.offsets("out", p)[1] for p in range(2)) == 3
    assert log.committed_offsets("q") == {TopicPartition("in", 0): 42}


def test_a_group_members_transaction_commits_its_offsets(log: Log) -> None:
    log.create_topic("in", 1)
    log.create_topic("out", 1)
    log.append("in", [(b"k", f"v{i}") for i in range(5)])
    with log.consumer("in", group="q", auto_offset_reset="earliest") as consumer:
        got = drain(log, consumer)
        assert len(got) == 5
        with log.transaction("query-1") as txn:
            txn.append("out", [(b"k", v) for v in got])
            txn.commit_offsets(
                "q", {TopicPartition("in", 0): consumer.position(TopicPartition("in", 0))}
            )
    assert values(log, "out") == got
    assert log.committed_offsets("q") == {TopicPartition("in", 0): log.offsets("in", 0)[1]}
    with log.consumer("in", group="q") as again:
        assert drain(log, again) == []


def test_aborted_transaction_leaves_nothing(log: Log) -> None:
    log.create_topic("out")
    txn = log.transaction()

    def failing_query() -> None:
        with txn:
            txn.append("out", [(b"a", b"1")])
            txn.commit_offsets("q", {TopicPartition("out", 0): 1})
            raise RuntimeError("the query failed")

    with pytest.raises(RuntimeError):
        failing_query()
    assert readable(log, "out") == 0
    if not is_kafka(log):  # the aborted record and its abort marker hold offsets on Kafka
        assert log.offsets("out", 0) == (0, 0)
    assert log.committed_offsets("q") == {}
    with pytest.raises(TransactionError, match="already aborted"):
        txn.append("out", [(b"a", b"1")])
    with log.transaction() as after:  # the owner's next transaction goes ahead
        after.append("out", [(b"b", b"2")])
    assert values(log, "out", 0, log.offsets("out", 0)[0]) == [b"2"]


def test_commit_returns_offset_ranges(log: Log) -> None:
    log.create_topic("out")
    log.append("out", [(b"x", b"0")])
    txn = log.transaction()
    txn.append("out", [(b"a", b"1"), (b"b", b"2")], partition=0)
    txn.append("out", [(b"c", b"3")], partition=0)
    assert txn.commit() == {TopicPartition("out", 0): (1, 4)}
    assert values(log, "out") == [b"0", b"1", b"2", b"3"]
    with pytest.raises(TransactionError, match="already committed"):
        txn.commit()
    second = log.transaction()
    second.append("out", [(b"d", b"4")])
    # on Kafka, the first transaction's commit marker holds offset 4
    first = 5 if is_kafka(log) else 4
    assert second.commit() == {TopicPartition("out", 0): (first, first + 1)}
    assert log.read_table("out", 0, 4).column("offset").to_pylist() == [first]
