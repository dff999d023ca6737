"""Fixtures of the connector tests: Redis sinks, a redis-py client, a key prefix per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis as redis_py

from hispeed.connectors.redis import RedisSink
from hispeed.testing.services import Service

SinkFactory = Callable[..., RedisSink]


@pytest.fixture
def redis_client(redis_server: Service) -> Iterator[redis_py.Redis]:
    c = redis_py.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest, redis_client: redis_py.Redis) -> str:
    """A key prefix of the test's own (its keys are deleted first)."""
    name = request.node.name.replace("[", ":").replace("]", "")
    for key in redis_client.scan_iter(f"{name}:*"):
        redis_client.delete(key)
    return name


@pytest.fixture
def redis_sink_factory(redis_server: Service) -> Iterator[SinkFactory]:
    """Started RedisSinks on the test Redis; stopped at the end."""
    made: list[RedisSink] = []

    def make(**config: str) -> RedisSink:
        props = {"redis.url": redis_server.url}
        props |= {k.replace("_", "."): v for k, v in config.items()}
        sink = RedisSink("test_sink", props)
        sink.start()
        made.append(sink)
        return sink

    yield make
    for s in made:
        s.stop()
