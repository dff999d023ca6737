"""Kafka reads through the native fetcher (`hispeed.log._rdfetch`) give exactly the batches of
confluent-kafka's message objects: the same offsets, timestamps (0 included), keys, values,
tombstones and headers, split by partition the same way; and the fetcher is what a consumer
uses wherever the extension is built (every machine with a C compiler)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest

from hispeed.log import kafka as kafka_module
from hispeed.log.base import APPEND_SCHEMA, PolledBatch
from hispeed.log.kafka import KafkaLog
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
            "hispeed.log._rdfetch is not built or cannot drive confluent-kafka's librdkafka"
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
    monkeypatch.setattr(kafka_module, "native_extension", lambda: None)
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
        h["key"] != kafka_module.ZERO_TIMESTAMP_HEADER for row in rows for h in row["headers"] or ()
    )
