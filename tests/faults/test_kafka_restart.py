"""The Kafka broker killed (SIGKILL) and started again mid-stream, in Kafka mode.

A query copies a three-partition stream while records keep coming; the broker is killed once
the query's output holds a random number of records (a moment chosen by progress), then
started again on the same data directory and port. What users rely on: every record whose
append Kafka acknowledged is in the input once, and the query's output, read committed, holds
each input record exactly once (exactly-once across the broker's restart).
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from hispeed.engine import Engine
from hispeed.errors import HispeedError, LogUnavailableError
from hispeed.log.kafka import KafkaLog
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
                    doc = {k.lower(): v for k, v in json.loads(value).items()}
                    out.append(int(doc["i"]))
    except (HispeedError, KafkaException):  # reconnecting (librdkafka backs off a while)
        return None
    return out


def _count(log: KafkaLog, topic: str) -> int:
    values = _values(log, topic)
    return -1 if values is None else len(values)


@pytest.mark.skip(
    reason="not passing yet (issue 16): the restarted broker serves (fixed: the script took the "
    "killed JVM, a zombie until reaped, for a running broker and started none) and every append "
    "is acknowledged again, but the copying query stops for good at the records copied before "
    "the restart (seen: 1000 of 2050 inputs after 120 s, no query failure recorded): the "
    "engine's thread blocks inside librdkafka's send_offsets_to_transaction past its 10 s "
    "timeout (DistributedTask._process -> KafkaTransaction.commit_offsets), as in librdkafka "
    "issues #5456 and #5511 (the call ignores its timeout while the group coordinator is down or "
    "moved); librdkafka 2.16.0 here; a workaround (the call off the loop's thread, the producer "
    "replaced when it overruns) is to do"
)
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
        os.kill(broker.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(broker.pid), timeout=30)
        broker_down.set()
        stack.enter_context(kafka_broker(workdir, port, settings=KEEPING_SETTINGS))
        producer.join(180)
        assert not producer.is_alive(), "the producer was never acknowledged again"
        inputs = wait_for(lambda: _values(log, "readings"), timeout=60)
        wait_for(lambda: _count(log, "COPIED") >= len(inputs), timeout=120)
        outputs = wait_for(lambda: _values(log, "COPIED"), timeout=60)
    assert set(inputs) >= set(acked)
    assert Counter(outputs) == Counter(inputs)


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
