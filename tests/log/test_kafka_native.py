"""Kafka reads through the native fetcher (`hispeed.log._rdbulk`) give exactly the batches of
confluent-kafka's message objects: the same offsets, timestamps (0 included), keys, values,
tombstones and headers, split by partition the same way; and the fetcher is what a consumer
uses wherever the extension is built (every machine with a C compiler)."""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Iterator

import pyarrow as pa
import pytest

from hispeed.errors import TransactionError
from hispeed.log import kafka_client, kafka_consumer
from hispeed.log.base import APPEND_SCHEMA, PolledBatch
from hispeed.log.kafka import KafkaLog
from hispeed.log.murmur2 import partitions_for_keys
from hispeed.testing.services import Service

pytestmark = [pytest.mark.services, pytest.mark.kafka]


@pytest.fixture
def log(kafka_server: Service) -> Iterator[KafkaLog]:
    log_ = KafkaLog(kafka_server.bootstrap, prefix=f"n{uuid.uuid4().hex[:10]}-", timeout=20)
    try:
        yield log_
    finally:
        log_.delete_namespace()
        log_.close()


def records(n: int, salt: int) -> pa.RecordBatch:
    """Records of every shape a read must keep: null keys, tombstones, empty values, headers
    (one with a null value), timestamp 0, and a value of 200 KB."""
    keys = [None if i % 7 == 0 else f"k{i % 13}".encode() for i in range(n)]
    values = [
        None if i % 11 == 0 else b"" if i % 17 == 0 else f'{{"N":{i + salt}}}'.encode()
        for i in range(n)
    ]
    values[n // 2] = b"x" * 200_000
    headers = [
        [{"key": "trace", "value": f"t{i}".encode()}, {"key": "empty", "value": None}]
        if i % 5 == 0
        else None
        for i in range(n)
    ]
    stamps = [0 if i % 9 == 0 else 1_700_000_000_000 + i for i in range(n)]
    return pa.record_batch(
        [
            pa.array(stamps, pa.int64()),
            pa.array(keys, pa.binary()),
            pa.array(values, pa.binary()),
            pa.array(headers, APPEND_SCHEMA.field("headers").type),
        ],
        schema=APPEND_SCHEMA,
    )


def read_all(log: KafkaLog, expected: int) -> list[PolledBatch]:
    consumer = log.consumer("^data-.*", auto_offset_reset="earliest")
    try:
        got: list[PolledBatch] = []
        for _ in range(100):
            got += consumer.poll(0.5, max_records=1_000)
            if sum(p.batch.num_rows for p in got) >= expected:
                break
        return got
    finally:
        consumer.close()


def by_partition(polled: list[PolledBatch]) -> dict[tuple[str, int], list[dict[str, object]]]:
    out: dict[tuple[str, int], list[dict[str, object]]] = {}
    for p in polled:
        out.setdefault((p.partition.topic, p.partition.partition), []).extend(p.batch.to_pylist())
    return out


def test_a_consumer_reads_through_the_native_fetcher(log: KafkaLog) -> None:
    log.create_topic("data-a", 2)
    consumer = log.consumer("data-a", auto_offset_reset="earliest")
    try:
        assert consumer._native is not None, (  # type: ignore[attr-defined]
            "hispeed.log._rdbulk is not built or cannot drive confluent-kafka's librdkafka"
        )
    finally:
        consumer.close()


def test_native_reads_equal_message_object_reads(
    log: KafkaLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.create_topic("data-a", 3)
    log.create_topic("data-b", 2)
    log.append("data-a", records(600, 0))
    log.append("data-b", records(300, 1000))
    log.append("data-a", records(150, 5000), partition=1)
    expected = 1050

    native = read_all(log, expected)
    monkeypatch.setattr(kafka_consumer, "native_extension", lambda: None)
    plain = read_all(log, expected)

    assert sum(p.batch.num_rows for p in native) == expected
    assert by_partition(native) == by_partition(plain)
    for p in native:  # one partition per batch, in offset order, as the schema says
        assert p.batch.schema == plain[0].batch.schema
        offsets = p.batch.column("offset").to_pylist()
        assert offsets == sorted(offsets)
    rows = [row for p in native for row in p.batch.to_pylist()]
    assert any(row["timestamp"] == 0 for row in rows)
    assert any(row["value"] is None for row in rows)
    assert any(row["key"] is None for row in rows)
    assert any(row["headers"] for row in rows)
    assert all(  # the timestamp-0 header is read back as the timestamp and taken away
        h["key"] != kafka_client.ZERO_TIMESTAMP_HEADER for row in rows for h in row["headers"] or ()
    )


def test_a_transaction_writes_natively_what_it_was_given(log: KafkaLog) -> None:
    """A transaction's batch goes out through the native extension but for each partition's
    first and last record: every record arrives in its partition in the batch's order, and
    the commit's offset ranges are exact."""
    log.create_topic("data-out", 3)
    batch = records(3_000, 7)
    # no timestamp 0 and no headers: the native path (they take the message objects' path)
    stamps = pa.array([1_700_000_000_000 + i for i in range(batch.num_rows)], pa.int64())
    plain = pa.record_batch(
        [stamps, batch.column(1), batch.column(2), pa.nulls(batch.num_rows, batch.column(3).type)],
        schema=APPEND_SCHEMA,
    )
    txn = log.transaction("writer")
    txn.append("data-out", plain)
    txn.append("data-out", plain.slice(0, 2))  # partitions with one or two records
    ranges = txn.commit()

    got = by_partition(read_all(log, plain.num_rows + 2))
    assert sum(len(v) for v in got.values()) == plain.num_rows + 2
    for tp, (first, end) in ranges.items():
        offsets = [r["offset"] for r in got[(tp.topic, tp.partition)]]
        assert (first, end) == (offsets[0], offsets[-1] + 1)

    def written(row: dict[str, object]) -> tuple[object, ...]:
        return row["key"], row["value"], row["timestamp"]

    # keyed records in their murmur2 partition, in the batch's order
    rows = plain.to_pylist() + plain.slice(0, 2).to_pylist()
    target = partitions_for_keys(plain.column(1), 3).tolist()
    expected: dict[tuple[str, int], list[tuple[object, ...]]] = {}
    for row, p in zip(rows, target + target[:2], strict=True):
        if row["key"] is not None:
            expected.setdefault(("data-out", p), []).append(written(row))
    keyed = {tp: [written(r) for r in v if r["key"] is not None] for tp, v in got.items()}
    assert keyed == expected
    # and every null-keyed one somewhere
    nulls = [written(r) for v in got.values() for r in v if r["key"] is None]
    assert sorted(nulls, key=repr) == sorted(
        (written(r) for r in rows if r["key"] is None), key=repr
    )


def test_a_consumer_left_unclosed_is_collected(log: KafkaLog) -> None:
    """The native fetcher holds the confluent-kafka consumer, whose callbacks hold the
    KafkaConsumer that holds the fetcher: the collector must see that cycle and free it."""
    log.create_topic("data-a", 1)
    consumer = log.consumer("data-a", group="left", auto_offset_reset="earliest")
    consumer.assignment()
    gone = weakref.ref(consumer)
    del consumer
    gc.collect()
    assert gone() is None


def test_a_record_refused_natively_aborts_the_transaction(log: KafkaLog) -> None:
    """A record librdkafka refuses in the middle of a bulk append (too large for the
    producer) fails the append and aborts the transaction: none of its records are seen."""
    log.create_topic("data-out", 1)
    values = [b"v"] * 10
    values[5] = b"x" * 2_000_000  # past the producer's message.max.bytes (1 MB)
    batch = pa.record_batch(
        [
            pa.array([1_700_000_000_000 + i for i in range(10)], pa.int64()),
            pa.array([f"k{i}".encode() for i in range(10)], pa.binary()),
            pa.array(values, pa.binary()),
            pa.nulls(10, APPEND_SCHEMA.field("headers").type),
        ],
        schema=APPEND_SCHEMA,
    )
    txn = log.transaction("writer")
    with pytest.raises(TransactionError, match="Kafka refused a record"):
        txn.append("data-out", batch)
    with pytest.raises(TransactionError, match="aborted"):
        txn.commit()
    txn = log.transaction("writer")
    txn.append("data-out", batch.slice(0, 3))
    txn.commit()
    rows = [r for p in read_all(log, 3) for r in p.batch.to_pylist()]
    assert [r["value"] for r in rows] == [b"v"] * 3
