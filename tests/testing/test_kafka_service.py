"""The kafka_server fixture starts a real Apache Kafka broker: topics, keyed records, consumer
groups, transactions (committed, aborted, and abandoned ones the broker aborts itself)."""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from hispeed.testing.services import Service, require_binary

pytestmark = [pytest.mark.services, pytest.mark.kafka]


def create_topic(server: Service, partitions: int) -> str:
    topic = f"probe-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=20)
    return topic


def consume(config: dict[str, Any], assign: list[TopicPartition], until: int) -> list[Any]:
    """Records read from the start of the partitions (assigned, no group) until their end."""
    consumer = Consumer({**config, "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in assign])
        records: list[Any] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + until
        while len(at_end) < len(assign) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    continue
                raise KafkaException(message.error())
            records.append(message)
        return records
    finally:
        consumer.close()


def test_records_in_a_consumer_group(kafka_server: Service) -> None:
    assert kafka_server.url == kafka_server.bootstrap == f"127.0.0.1:{kafka_server.port}"
    topic = create_topic(kafka_server, partitions=3)
    producer = Producer({"bootstrap.servers": kafka_server.bootstrap, "linger.ms": 5})
    for i in range(100):
        producer.produce(topic, value=f"v{i}".encode(), key=f"key-{i}".encode())
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_server.bootstrap,
            "group.id": f"group-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # below Kafka's usual least (6 s): the fixture's broker allows 1 s
            "session.timeout.ms": 1500,
            "heartbeat.interval.ms": 300,
        }
    )
    seen: dict[bytes, bytes] = {}
    partitions: set[int] = set()
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20
        while len(seen) < 100 and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.5):
                if message.error():
                    raise KafkaException(message.error())
                seen[message.key()] = message.value()
                partitions.add(message.partition())
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    finally:
        consumer.close()
    assert seen == {f"key-{i}".encode(): f"v{i}".encode() for i in range(100)}
    assert partitions == {0, 1, 2}
    assert sum(tp.offset for tp in committed) == 100


def test_committed_and_aborted_transactions(kafka_server: Service) -> None:
    topic = create_topic(kafka_server, partitions=1)
    producer = Producer(
        {"bootstrap.servers": kafka_server.bootstrap, "transactional.id": f"tx-{uuid.uuid4()}"}
    )
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed", key=b"k")
    producer.commit_transaction(10)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted", key=b"k")
    assert producer.flush(10) == 0
    producer.abort_transaction(10)

    tp = [TopicPartition(topic, 0)]
    base = {"bootstrap.servers": kafka_server.bootstrap, "group.id": "unused"}
    committed = consume({**base, "isolation.level": "read_committed"}, tp, until=10)
    everything = consume({**base, "isolation.level": "read_uncommitted"}, tp, until=10)
    assert [m.value() for m in committed] == [b"committed"]
    assert [m.value() for m in everything] == [b"committed", b"aborted"]


def test_an_abandoned_transaction_is_aborted_soon_after_its_timeout(
    kafka_server: Service,
) -> None:
    """As after a transactional producer's crash: its open transaction holds read_committed
    consumers back only until the broker aborts it (the fixture's broker checks every 1 s)."""
    topic = create_topic(kafka_server, partitions=1)
    producer = Producer(
        {
            "bootstrap.servers": kafka_server.bootstrap,
            "transactional.id": f"tx-{uuid.uuid4()}",
            "transaction.timeout.ms": 1000,
        }
    )
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce(topic, value=b"left open", key=b"k")
    assert producer.flush(10) == 0
    opened = time.monotonic()  # and never committed nor aborted by the producer

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_server.bootstrap,
            "group.id": "unused",
            "isolation.level": "read_committed",
        }
    )
    try:
        # a read_committed consumer's end of the partition is its last stable offset: 0 while
        # the transaction is open, 2 (the record and the abort marker) once it is aborted
        stable = 0
        while stable == 0 and time.monotonic() - opened < 6:
            stable = consumer.get_watermark_offsets(TopicPartition(topic, 0), 5, cached=False)[1]
            time.sleep(0.05)
        waited = time.monotonic() - opened
    finally:
        consumer.close()
    assert stable == 2, f"the transaction is still open {waited:.1f}s after it began"
    tp = [TopicPartition(topic, 0)]
    base = {"bootstrap.servers": kafka_server.bootstrap, "group.id": "unused"}
    assert consume({**base, "isolation.level": "read_committed"}, tp, until=10) == []
    everything = consume({**base, "isolation.level": "read_uncommitted"}, tp, until=10)
    assert [m.value() for m in everything] == [b"left open"]


def test_kcat_lists_the_topic(kafka_server: Service) -> None:
    kcat = require_binary("kcat", "kcat")
    topic = create_topic(kafka_server, partitions=3)
    listed = subprocess.run(
        [kcat, "-b", kafka_server.bootstrap, "-L", "-t", topic],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    assert f'topic "{topic}" with 3 partitions' in listed
