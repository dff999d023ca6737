"""The Kafka broker killed (SIGKILL) and started again mid-stream, in Kafka mode.

A query copies a three-partition stream while records keep coming; the broker is killed once
the query's output holds a random number of records (a moment chosen by progress), then
started again on the same data directory and port. What users rely on: every record whose
append Kafka acknowledged is in the input once, and the query's output, read committed (by a
plain read_committed consumer, not hispeed's reader), holds each input record exactly once
(exactly-once across the broker's restart), the query RUNNING again.

A transaction caught by the broker's death fails within its deadline (its log's timeout and
`OVERRUN_GRACE`) instead of blocking forever in librdkafka's send_offsets_to_transaction
(librdkafka #5456, #5511), as a retriable LogUnavailableError; the owner's next transaction
(a new producer of the same transactional.id) commits, and nothing of the given-up one is
ever read committed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from hispeed.engine import Engine
from hispeed.errors import HispeedError, LogUnavailableError
from hispeed.log.base import TopicPartition, Transaction
from hispeed.log.kafka import KafkaLog
from hispeed.log.kafka_transaction import OVERRUN_GRACE
from hispeed.processes import pid_alive
from hispeed.testing.kafka import (
    KEEPING_SETTINGS,
    KafkaUnavailableError,
    free_port_pair,
    kafka_broker,
)
from hispeed.testing.services import unavailable
from hispeed.testing.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.kafka]

N = 2_000
BATCH = 50
STATEMENTS = """
CREATE STREAM readings (k STRING KEY, i INT)
  WITH (kafka_topic='readings', partitions=3, value_format='JSON');
CREATE STREAM copied AS SELECT k, i FROM readings EMIT CHANGES;
"""


def _values(log: KafkaLog, topic: str) -> list[int] | None:
    """The `i` of every record of a topic, read committed; None while the broker is away."""
    out = []
    try:
        for p in range(3):
            for batch in log.read(topic, p, log.offsets(topic, p)[0]):
                for value in batch.column("value").to_pylist():
                    out.append(_i(value))
    except (HispeedError, KafkaException):  # reconnecting (librdkafka backs off a while)
        return None
    return out


def _read_committed(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    """Every value of a Kafka topic as a read_committed consumer of its own sees it (to its
    end), written independently of hispeed's reader."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([KafkaPartition(topic, p, 0) for p in range(partitions)])
        values: list[bytes] = []
        ended: set[int] = set()
        deadline = time.monotonic() + 60
        while len(ended) < partitions:
            assert time.monotonic() < deadline, f"{topic} was not read to its end"
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                ended.add(msg.partition())
                continue
            ended.discard(msg.partition())
            values.append(msg.value())
        return values
    finally:
        consumer.close()


def _i(value: bytes) -> int:
    return int({k.lower(): v for k, v in json.loads(value).items()}["i"])


def _commit_with_offset(txn: Transaction, offset: int) -> None:
    txn.commit_offsets("probers", {TopicPartition("probed", 0): offset})
    txn.commit()


def _shown_state(engine: Engine) -> tuple[str, str | None]:
    """The query's state and error as SHOW QUERIES says them, or UNAVAILABLE and the error
    of a statement refused because Kafka is away."""
    try:
        (query,) = engine.execute("SHOW QUERIES")[0].rows
    except LogUnavailableError as e:
        return "UNAVAILABLE", str(e)
    return query["state"], query.get("error")


def _count(log: KafkaLog, topic: str) -> int:
    values = _values(log, topic)
    return -1 if values is None else len(values)


def test_a_broker_restart_mid_stream_keeps_a_querys_output_exact(tmp_path: Path) -> None:
    rng = random.Random(20261206)
    workdir = tmp_path / "kafka"
    workdir.mkdir()
    port = free_port_pair()
    with ExitStack() as stack:
        try:
            broker = stack.enter_context(kafka_broker(workdir, port, settings=KEEPING_SETTINGS))
        except KafkaUnavailableError as e:
            unavailable(f"no Kafka broker: {e}")
        prefix = f"r{uuid.uuid4().hex[:8]}."
        log = KafkaLog(
            broker.bootstrap,
            prefix=prefix,
            app_id="restart",
            transactional_id=f"{prefix}worker",
            timeout=10,
        )
        # a transaction of its own, open when the broker dies (a short timeout: it is
        # given up sooner)
        probe = stack.enter_context(
            KafkaLog(broker.bootstrap, prefix=prefix, transactional_id=f"{prefix}probe", timeout=2)
        )
        probe.create_topic("probed", partitions=1)
        engine = stack.enter_context(Engine(log_=log, worker_id="w1"))
        engine.execute(STATEMENTS, {"auto.offset.reset": "earliest"})
        engine.start()
        acked: list[int] = []

        broker_down = threading.Event()

        def produce() -> None:
            # the second half goes only once the broker is down, so that appends and the
            # query's transactions meet its absence whatever the timing; each batch is
            # retried until Kafka acknowledges it (while the broker is away appends fail; a
            # batch may land more than once only if never acknowledged)
            for start in range(0, N, BATCH):
                if start == N // 2:
                    broker_down.wait(120)
                records = [(f"k{i % 7}", json.dumps({"i": i})) for i in range(start, start + BATCH)]
                while True:
                    try:
                        engine.log.append("readings", records)
                        break
                    except HispeedError:
                        continue
                acked.extend(range(start, start + BATCH))

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        kill_at = rng.randint(100, N // 2 - BATCH)
        wait_for(lambda: _count(log, "COPIED") >= kill_at, timeout=120)
        lost = probe.transaction(owner="p")
        lost.append("probed", [("a", "lost")])
        os.kill(broker.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(broker.pid), timeout=30)
        broker_down.set()
        # librdkafka's send_offsets_to_transaction never returns here (its coordinator gone):
        # the transaction is given up within its deadline, with an error the engine retries
        began = time.monotonic()
        with pytest.raises(LogUnavailableError):
            _commit_with_offset(lost, 1)
        assert time.monotonic() - began < probe.timeout + OVERRUN_GRACE + 5
        # the engine answers while the broker is away (its loop held the engine's lock for
        # good, stuck in that call): that Kafka is away, or the query's state, in time
        began = time.monotonic()
        state, error = _shown_state(engine)
        assert time.monotonic() - began < log.timeout + OVERRUN_GRACE + 10
        assert state in ("RUNNING", "ERROR", "UNAVAILABLE")
        assert state == "RUNNING" or error  # a message that says why
        stack.enter_context(kafka_broker(workdir, port, settings=KEEPING_SETTINGS))

        def probed_again() -> bool:
            # a new producer of the same transactional.id: its start fences the given-up one
            try:
                txn = probe.transaction(owner="p")
            except HispeedError:
                return False
            try:
                txn.append("probed", [("b", "kept")])
                _commit_with_offset(txn, 2)
            except HispeedError:
                return False
            return True

        wait_for(probed_again, timeout=120)
        producer.join(180)
        assert not producer.is_alive(), "the producer was never acknowledged again"
        inputs = wait_for(lambda: _values(log, "readings"), timeout=60)
        wait_for(lambda: _count(log, "COPIED") >= len(inputs), timeout=120)
        outputs = wait_for(lambda: _values(log, "COPIED"), timeout=60)
        # the query is RUNNING again, its error gone
        assert _shown_state(engine) == ("RUNNING", None)
        copied = _read_committed(broker.bootstrap, f"{prefix}COPIED", 3)
        probed = _read_committed(broker.bootstrap, f"{prefix}probed", 1)
    assert set(inputs) >= set(acked)
    assert Counter(outputs) == Counter(inputs)
    assert Counter(_i(v) for v in copied) == Counter(inputs)
    assert probed == [b"kept"]


def test_a_broker_killed_with_9_starts_again_on_its_data(tmp_path: Path) -> None:
    """A broker SIGKILLed is started again at once on its directory and port: it serves, with
    what it acknowledged. (The script took the killed JVM, a zombie until reaped, for a running
    broker, answered 'already running' and started none.)"""
    workdir = tmp_path / "kafka"
    port = free_port_pair()
    with ExitStack() as stack:
        try:
            broker = stack.enter_context(kafka_broker(workdir, port, settings=KEEPING_SETTINGS))
        except KafkaUnavailableError as e:
            unavailable(f"no Kafka broker: {e}")
        log = stack.enter_context(KafkaLog(broker.bootstrap, prefix="k9.", timeout=5))
        log.create_topic("t", partitions=1)
        log.append("t", [("a", "1"), ("b", "2")])
        os.kill(broker.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(broker.pid), timeout=30)
        # while the broker is away, the log's calls fail with a retriable hispeed error (not
        # librdkafka's KafkaException, which the engine's loop logged with a traceback each
        # 0.5 s): a topic not yet cached, and the offsets of one that is
        with pytest.raises(LogUnavailableError):
            log.partition_count("u")
        with pytest.raises(LogUnavailableError):
            log.offsets("t", 0)
        # restarted the moment the JVM has ended (it may be a zombie still: not reaped yet)
        wait_for(lambda: not pid_alive(broker.pid), timeout=30)
        again = stack.enter_context(kafka_broker(workdir, port, settings=KEEPING_SETTINGS))
        assert again.pid != broker.pid
        assert pid_alive(again.pid)

        def appended() -> bool:
            try:
                log.append("t", [("c", "3")])
            except HispeedError:
                return False
            return True

        wait_for(appended, timeout=60)
        values = wait_for(lambda: _topic_values(log, "t"), timeout=30)
    assert values == [b"1", b"2", b"3"]


def _topic_values(log: KafkaLog, topic: str) -> list[bytes] | None:
    try:
        return [
            v
            for b in log.read(topic, 0, log.offsets(topic, 0)[0])
            for v in b.column("value").to_pylist()
        ]
    except HispeedError:
        return None
