"""`Client.producer()`: confluent-kafka's Producer shape over a server's `POST /topics`: the
records land as the engine's own producer puts them, delivery reports say where."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import hispeed
from hispeed.client import Client
from hispeed.errors import HispeedError
from hispeed.log import partition_for_key
from tests.server.conftest import RunningServer


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with hispeed.Client(server.url, timeout=10) as c:
        yield c


def test_records_are_delivered_where_the_reports_say(server: RunningServer, client: Client) -> None:
    server.engine.log.create_topic("remote", 3)
    reports: list[tuple[Any, Any]] = []
    with client.producer({"linger.ms": 2, "batch.num.messages": 50}) as producer:
        for i in range(200):
            value: Any = {"n": i} if i % 2 else json.dumps({"n": i}).encode()
            producer.produce(
                "remote", value, key=f"k{i % 9}", on_delivery=lambda e, m: reports.append((e, m))
            )
        assert producer.flush(timeout=30) == 0
    assert len(reports) == 200
    log = server.engine.log
    for i, (err, msg) in enumerate(reports):
        assert err is None
        assert msg.partition() == partition_for_key(f"k{i % 9}".encode(), 3)
        table = log.read_table("remote", msg.partition(), msg.offset())
        assert json.loads(table.column("value")[0].as_py()) == {"n": i}
        assert table.column("key")[0].as_py() == f"k{i % 9}".encode()


def test_what_a_server_cannot_take_is_refused(server: RunningServer, client: Client) -> None:
    producer = client.producer()
    with pytest.raises(HispeedError, match="stamps records itself"):
        producer.produce("t", b"{}", timestamp=5)
    producer.produce("t", b"not json")
    with pytest.raises(HispeedError, match="could not be appended"):
        producer.flush(timeout=30)
    producer.close()
