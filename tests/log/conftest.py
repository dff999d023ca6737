"""The `log` of tests/log runs every interface test on both backends: the embedded log, and
Apache Kafka (the session's broker, `kafka_server`; each test under a topic and group prefix of
its own, so that one broker serves them all)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hispeed.log import Log
from hispeed.log.kafka import KafkaLog
from hispeed.testing.services import Service
from tests.conftest import LogFactory

#: opens a log over one storage; each call, one more over the same data (a restart)
OpenLog = Callable[[], Log]
#: makes a new, empty storage (a data directory, or a Kafka prefix): returns its opener
NewStorage = Callable[[], OpenLog]

BACKENDS = ["embedded", pytest.param("kafka", marks=[pytest.mark.services, pytest.mark.kafka])]


@pytest.fixture(params=BACKENDS)
def storage(
    request: pytest.FixtureRequest, log_factory: LogFactory, tmp_path: Path
) -> Iterator[NewStorage]:
    """New storages for logs of the test's backend; every log opened is closed at the end."""
    numbers = itertools.count()
    if request.param == "embedded":

        def new_directory() -> OpenLog:
            data_dir = tmp_path / f"data-{next(numbers)}"
            return lambda: log_factory(data_dir)

        yield new_directory
        return
    server: Service = request.getfixturevalue("kafka_server")
    opened: list[KafkaLog] = []

    def new_prefix() -> OpenLog:
        prefix = f"t{uuid.uuid4().hex[:10]}-"

        def open_kafka() -> Log:
            log = KafkaLog(
                server.bootstrap,
                prefix=prefix,
                session_timeout_ms=2000,  # heartbeats every 400 ms: a group rebalances quickly
                timeout=20,
            )
            opened.append(log)
            log._plain_producer()  # its producer id comes while the test makes topics
            return log

        return open_kafka

    yield new_prefix
    for log in opened:
        log.close()


@pytest.fixture
def open_log(storage: NewStorage) -> OpenLog:
    """Opens logs over one storage of the test's backend: closing one and opening another is
    a restart."""
    return storage()


@pytest.fixture
def log(open_log: OpenLog) -> Log:
    return open_log()


def is_kafka(log: Log) -> bool:
    return isinstance(log, KafkaLog)


def values(log: Log, topic: str, partition: int = 0, offset: int = 0) -> list[bytes | None]:
    got: list[bytes | None] = log.read_table(topic, partition, offset).column("value").to_pylist()
    return got
