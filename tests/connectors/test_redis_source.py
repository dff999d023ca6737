"""The Redis source against a real redis-server: pub/sub, streams in a group, keyspace events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_py

from hispeed.connectors.base import ConnectorError, RetriableError, SourceRecord
from hispeed.connectors.redis import RedisSource
from hispeed.testing.services import Service

pytestmark = pytest.mark.services

SourceFactory = Callable[..., RedisSource]


@pytest.fixture
def source_factory(redis_server: Service) -> Iterator[SourceFactory]:
    made: list[RedisSource] = []

    def make(position: Any = None, **config: str) -> RedisSource:
        props = {"redis.url": redis_server.url}
        props |= {k.replace("_", "."): v for k, v in config.items()}
        source = RedisSource("test_source", props)
        source.start(position)
        made.append(source)
        return source

    yield make
    for s in made:
        s.stop()


def poll_until(source: RedisSource, count: int, timeout: float = 5) -> list[SourceRecord]:
    out: list[SourceRecord] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        out += source.poll(0.1)
    return out


def test_pubsub_brings_messages_of_channels_and_patterns(
    source_factory: SourceFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    source = source_factory(
        redis_source="pubsub", redis_channels=f"{redis_prefix}:alerts, {redis_prefix}:dev:*"
    )
    source.poll(0.2)  # the subscriptions are confirmed
    redis_client.publish(f"{redis_prefix}:alerts", '{"level": "high"}')
    redis_client.publish(f"{redis_prefix}:dev:7", "plain text")
    redis_client.publish(f"{redis_prefix}:other", "not subscribed")
    got = poll_until(source, 2)
    assert [(r.key, json.loads(r.value or b"")) for r in got] == [
        (f"{redis_prefix}:alerts".encode(), {"level": "high"}),
        (
            f"{redis_prefix}:dev:7".encode(),
            {"channel": f"{redis_prefix}:dev:7", "message": "plain text"},
        ),
    ]
    assert source.poll(0.1) == []


def test_a_stream_is_read_in_a_consumer_group_and_resumes_after_its_position(
    source_factory: SourceFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}:orders"
    for i in range(5):
        redis_client.xadd(stream, {"order": f"o{i}", "amount": str(i * 10)}, id=f"{i + 1}-0")
    config = {"redis_source": "stream", "redis_stream": stream, "redis_group": "g"}
    source = source_factory(key_field="order", batch_size="3", **config)
    first = poll_until(source, 3)
    assert [r.key for r in first] == [b"o0", b"o1", b"o2"]
    assert json.loads(first[0].value or b"") == {"order": "o0", "amount": "0", "_id": "1-0"}
    assert first[-1].position == "3-0"
    assert first[0].timestamp == 1
    second = poll_until(source, 2)  # the runner committed the first: they are acknowledged
    assert [r.position for r in second] == ["4-0", "5-0"]
    assert redis_client.xpending(stream, "g")["pending"] == 2
    source.stop()
    # a crash: the runner had committed up to 4-0 only; 5-0 comes again, 1..4 do not
    again = source_factory("4-0", **config)
    got = poll_until(again, 1)
    assert [r.position for r in got] == ["5-0"]
    redis_client.xadd(stream, {"order": "o5"}, id="6-0")
    assert [r.position for r in poll_until(again, 1)] == ["6-0"]
    again.poll(0.1)
    assert redis_client.xpending(stream, "g")["pending"] == 0


def test_keyspace_notifications_bring_the_keys_that_change(
    source_factory: SourceFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    source = source_factory(redis_source="keyspace", redis_keys=f"{redis_prefix}:session:*")
    assert "K" in str(redis_client.config_get("notify-keyspace-events"))
    source.poll(0.2)
    redis_client.set(f"{redis_prefix}:session:1", "x", px=50)
    redis_client.hset(f"{redis_prefix}:session:2", "user", "ann")
    redis_client.set(f"{redis_prefix}:other", "y")
    got = poll_until(source, 3)
    events = [json.loads(r.value or b"") for r in got]
    session = f"{redis_prefix}:session:"
    assert events == [
        {"key": session + "1", "event": "set", "db": 0},
        {"key": session + "1", "event": "expire", "db": 0},
        {"key": session + "2", "event": "hset", "db": 0},
    ]
    assert got[0].key == (session + "1").encode()
    time.sleep(0.06)
    assert redis_client.get(session + "1") is None  # reading it expires it now
    expired = poll_until(source, 1)
    assert json.loads(expired[0].value or b"") == {
        "key": session + "1",
        "event": "expired",
        "db": 0,
    }


def test_a_source_needs_what_it_reads() -> None:
    with pytest.raises(ConnectorError, match=r"'redis\.channels'"):
        RedisSource("s", {"redis.source": "pubsub"})
    with pytest.raises(ConnectorError, match=r"'redis\.stream'"):
        RedisSource("s", {"redis.source": "stream"})
    with pytest.raises(ConnectorError, match="pubsub, stream or keyspace"):
        RedisSource("s", {"redis.source": "list"})


def test_a_stream_source_whose_connection_drops_reads_what_it_had_not_handed_out(
    source_factory: SourceFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}:jobs"
    for i in range(4):
        redis_client.xadd(stream, {"job": f"j{i}"}, id=f"{i + 1}-0")
    source = source_factory(
        redis_source="stream", redis_stream=stream, redis_group="g", batch_size="2"
    )
    assert [r.position for r in poll_until(source, 2)] == ["1-0", "2-0"]
    # entries 3 and 4 are delivered to the consumer, and the connection is lost on the way
    redis_client.xreadgroup("g", "test_source", {stream: ">"}, count=2)
    for c in redis_client.client_list():
        if c["cmd"] in ("xreadgroup", "xack"):
            redis_client.client_kill_filter(_id=c["id"])
    got: list[SourceRecord] = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        try:
            got += source.poll(0.1)
        except RetriableError:  # the runner retries the poll
            continue
    assert [r.position for r in got] == ["3-0", "4-0"]
