"""The producer (`hispeed.log.producer.Producer`, `Engine.producer()`): confluent-kafka's
shape, records batched in the background, delivery reports served by poll() and flush()."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from hispeed.errors import ConfigError, LogError
from hispeed.log import EmbeddedLog, partition_for_key
from hispeed.log.producer import DeliveredMessage, Producer, ProducerError
from tests.conftest import LogFactory


def values(log: EmbeddedLog, topic: str, partition: int = 0) -> list[Any]:
    return log.read_table(topic, partition).column("value").to_pylist()  # type: ignore[no-any-return]


def test_records_land_as_single_appends_do(log_factory: LogFactory, tmp_path: Path) -> None:
    """The same keyed records produced, and appended one by one: each partition holds the
    same records in the same order."""
    records = [(f"key-{i % 13}".encode(), f"v{i}".encode()) for i in range(2000)]
    single = log_factory(tmp_path / "single")
    single.create_topic("t", 4)
    for key, value in records:
        single.append("t", [(key, value)])
    log = log_factory(tmp_path / "produced")
    log.create_topic("t", 4)
    settings = {"linger.ms": 2, "batch.num.messages": 700, "queue.buffering.max.messages": 1000}
    with Producer(log, settings) as producer:
        for key, value in records:
            producer.produce("t", value, key)  # waits whenever 1000 are queued
        assert producer.flush(timeout=30) == 0
        assert producer.batches >= 2
    for p in range(4):
        assert (
            log.read_table("t", p)
            .select(["key", "value"])
            .equals(single.read_table("t", p).select(["key", "value"]))
        )


def test_delivery_callbacks_say_where_each_record_went(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 3)
    delivered: list[tuple[Any, DeliveredMessage]] = []
    producer = Producer(log, linger_ms=50)
    for i in range(30):
        key = f"k{i}".encode()
        producer.produce(
            "t",
            f"v{i}",
            key,
            on_delivery=lambda err, msg: delivered.append((err, msg)),
            timestamp=1000 + i,
            headers={"h": b"x"} if i % 2 else None,
        )
    assert delivered == []  # reports are served by poll() or flush(), in the caller's thread
    assert producer.flush(timeout=30) == 0
    assert len(delivered) == 30
    for i, (err, msg) in enumerate(delivered):
        assert err is None
        assert msg.error() is None
        assert msg.key() == f"k{i}".encode()
        assert msg.partition() == partition_for_key(msg.key(), 3)
        table = log.read_table("t", msg.partition())
        row = table.filter(table.column("offset").to_numpy() == msg.offset()).to_pylist()[0]
        assert row["value"] == f"v{i}".encode()
        assert row["timestamp"] == 1000 + i == msg.timestamp()[1]
        assert row["headers"] == ([{"key": "h", "value": b"x"}] if i % 2 else None)
    producer.close()


def test_poll_serves_reports_as_they_come(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 1)
    got: list[int] = []
    with Producer(log, linger_ms=1) as producer:
        producer.produce("t", b"a", on_delivery=lambda err, msg: got.append(msg.offset()))
        served = 0
        while not served:
            served = producer.poll(timeout=10)
        assert got == [0]
        assert len(producer) == 0


def test_an_explicit_partition_and_a_failure_reported(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 2)
    reports: list[tuple[Any, DeliveredMessage]] = []
    with Producer(log, linger_ms=1) as producer:
        producer.produce("t", b"p1", b"any", partition=1, on_delivery=lambda *a: reports.append(a))
        producer.produce("nope", b"x", on_delivery=lambda *a: reports.append(a))
        producer.produce("t", 12345, on_delivery=lambda *a: reports.append(a))  # not bytes
        producer.flush(timeout=30)
    by_value = {msg.value(): (err, msg) for err, msg in reports}
    assert by_value[b"p1"][0] is None
    assert by_value[b"p1"][1].partition() == 1
    err, msg = by_value[b"x"]
    assert "nope" in str(err)
    assert (msg.partition(), msg.offset()) == (-1, -1)
    assert "cannot be stored" in str(by_value[12345][0])
    assert values(log, "t", 1) == [b"p1"]


def test_failures_without_a_callback_raise_from_flush(log_factory: LogFactory) -> None:
    log = log_factory()
    producer = Producer(log, linger_ms=1)
    producer.produce("missing", b"x")
    producer.produce("missing", b"y")
    with pytest.raises(ProducerError, match="2 record"):
        producer.flush(timeout=30)
    producer.close()
    with pytest.raises(LogError, match="closed"):
        producer.produce("missing", b"z")


def test_many_threads_produce_and_flush(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", 2)
    producer = Producer(log, linger_ms=2, batch_size=100, max_buffered=1000)

    def run(n: int) -> None:
        for i in range(2000):
            producer.produce("t", f"{n}-{i}".encode(), f"{n}".encode())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert producer.flush(timeout=60) == 0
    got = values(log, "t", 0) + values(log, "t", 1)
    assert sorted(got) == sorted(f"{n}-{i}".encode() for n in range(6) for i in range(2000))
    for n in range(6):  # each thread's records in its order
        mine = [v for v in got if v.startswith(f"{n}-".encode())]
        assert mine == [f"{n}-{i}".encode() for i in range(2000)]
    producer.close()


def test_settings_are_checked(log_factory: LogFactory) -> None:
    log = log_factory()
    with pytest.raises(ConfigError, match="unknown producer setting 'lingerms'"):
        Producer(log, {"lingerms": 5})
    with pytest.raises(ConfigError, match="batch_size"):
        Producer(log, batch_size=0)
    Producer(log, {"bootstrap.servers": "ignored:9092", "linger.ms": 0}).close()
