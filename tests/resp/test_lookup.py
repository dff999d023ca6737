"""Lookups in Redis for enrichment joins: pipelined reads, a bounded cache, its staleness."""

from __future__ import annotations

import time

import pytest
import redis as redis_py

from hispeed.errors import ConnectorError, RetriableError
from hispeed.resp.lookup import RedisLookup
from hispeed.testing.services import Service, free_port

pytestmark = pytest.mark.services


def test_get_many_reads_hashes_and_misses_in_one_call(
    redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    redis_client.hset(f"{redis_prefix}:user:1", mapping={"name": "Ann", "tier": "gold"})
    redis_client.hset(f"{redis_prefix}:user:2", mapping={"name": "Bob"})
    lookup = RedisLookup(redis_server.url, redis_prefix + ":user:{KEY}", "hash")
    got = lookup.get_many([1, 2, 3, 1])
    assert got == [{"name": "Ann", "tier": "gold"}, {"name": "Bob"}, None, got[0]]
    assert lookup.misses == 3
    assert lookup.hits == 0
    lookup.close()


def test_cached_values_are_at_most_ttl_ms_stale(
    redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}:price:x"
    redis_client.set(key, '{"price": 10}')
    lookup = RedisLookup(redis_server.url, redis_prefix + ":price:{KEY}", "json", ttl_ms=300)
    assert lookup.get("x") == {"price": 10}
    redis_client.set(key, '{"price": 11}')
    assert lookup.get("x") == {"price": 10}  # from the cache, within ttl_ms
    assert lookup.hits == 1
    time.sleep(0.35)
    assert lookup.get("x") == {"price": 11}
    lookup.invalidate("x")
    redis_client.delete(key)
    assert lookup.get("x") is None
    lookup.close()


def test_the_cache_keeps_the_most_recently_used_up_to_its_size(
    redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    for i in range(5):
        redis_client.set(f"{redis_prefix}:s:{i}", f"v{i}")
    lookup = RedisLookup(redis_server.url, redis_prefix + ":s:{KEY}", "string", cache_size=3)
    assert lookup.get_many([0, 1, 2]) == [{"value": "v0"}, {"value": "v1"}, {"value": "v2"}]
    lookup.get(0)  # 0 is now the most recent; 1 the least
    lookup.get_many([3, 4])  # pushes out 1 and 2
    hits = lookup.hits
    lookup.get_many([0, 3, 4])
    assert lookup.hits == hits + 3
    lookup.get(1)
    assert lookup.hits == hits + 3  # 1 was read from Redis again
    lookup.close()


def test_a_lookup_key_of_columns_and_a_wrong_type(
    redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    redis_client.hset(f"{redis_prefix}:eu:7", "name", "Berlin")
    redis_client.sadd(f"{redis_prefix}:us:1", "a set")
    lookup = RedisLookup(redis_server.url, redis_prefix + ":{REGION}:{ID}", "hash")
    got = lookup.get_many([{"REGION": "eu", "ID": 7}, {"region": "us", "id": 1}])
    assert got == [{"name": "Berlin"}, None]
    assert lookup.errors == 1
    assert lookup.last_error is not None
    assert "WRONGTYPE" in lookup.last_error
    with pytest.raises(ConnectorError, match="needs column REGION"):
        lookup.get({"ID": 1})
    lookup.close()


def test_an_unreachable_redis_is_a_retriable_error() -> None:
    lookup = RedisLookup(f"redis://127.0.0.1:{free_port()}", "{KEY}")
    with pytest.raises(RetriableError, match="cannot connect"):
        lookup.get("k")
