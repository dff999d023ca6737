"""A stream enriched from memcached in SQL: MEMCACHED_GET, batched, through a bounded cache.

Values are put in memcached with pymemcache (its HashClient for two servers), never with
the code under test."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from hispeed.engine import Engine
from hispeed.errors import ConfigError
from hispeed.functions import memcached as memcached_functions
from hispeed.testing.services import MemcachedProcess, Service
from hispeed.testing.wait import wait_for

pytestmark = pytest.mark.services

READINGS = (
    "CREATE STREAM readings (device STRING KEY, speed DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


def items(port: int) -> int:
    """How many items the memcached on `port` holds, by its own count."""
    client = Client(("127.0.0.1", port))
    try:
        return int(client.stats()[b"curr_items"])
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _default_configuration() -> None:
    # the lookups' settings are the process's: each test starts from the defaults
    memcached_functions.configure()


def test_a_stream_enriched_from_memcached(tmp_path: Path, memcached_server: Service) -> None:
    client = Client((memcached_server.host, memcached_server.port), default_noreply=False)
    client.set("owner:d1", "ana")
    client.set("owner:d3", b"bo")
    props = {"memcached.servers": memcached_server.bootstrap}
    with Engine(tmp_path / "data", fsync="never", properties=props) as engine:
        engine.execute(
            READINGS + "CREATE STREAM enriched AS SELECT device, "
            "MEMCACHED_GET('owner:' + device) AS owner FROM readings;"
        )
        for device in ("d1", "d2", "d3", "d1", "with space"):
            engine.insert("readings", {"DEVICE": device, "SPEED": 1.0})
        engine.drain()
        owners = [(r["DEVICE"], r["OWNER"]) for r in engine.query("SELECT * FROM enriched")]
    client.close()
    assert owners == [
        ("d1", "ana"),
        ("d2", None),
        ("d3", "bo"),
        ("d1", "ana"),
        ("with space", None),  # memcached cannot hold such a key: NULL, the query goes on
    ]


def test_a_lookup_over_two_servers_finds_what_a_hashclient_put(
    tmp_path: Path, memcached_process: MemcachedProcess
) -> None:
    other = MemcachedProcess(memcached_process.binary)
    other.start()
    try:
        ports = [memcached_process.port, other.port]
        hashed = HashClient([("127.0.0.1", p) for p in ports], default_noreply=False)
        hashed.set_many({f"k{i}": f"v{i}" for i in range(40)})
        hashed.close()
        each = [items(p) for p in ports]
        assert min(each) > 5, each  # both servers hold keys
        servers = ",".join(f"127.0.0.1:{p}" for p in ports)
        with Engine(tmp_path / "data", fsync="never") as engine:
            engine.execute(
                READINGS + "CREATE STREAM e AS SELECT device, "
                f"MEMCACHED_GET(device, '{servers}') AS v FROM readings;"
            )
            for i in range(40):
                engine.insert("readings", {"DEVICE": f"k{i}", "SPEED": 1.0})
            engine.drain()
            rows = engine.query("SELECT * FROM e")
        assert {r["DEVICE"]: r["V"] for r in rows} == {f"k{i}": f"v{i}" for i in range(40)}
    finally:
        other.stop()


@pytest.mark.parametrize(("ttl_ms", "second"), [(600_000, "old"), (0, "new")])
def test_the_cache_is_bounded_in_size_and_time(
    tmp_path: Path, memcached_server: Service, ttl_ms: int, second: str
) -> None:
    client = Client((memcached_server.host, memcached_server.port), default_noreply=False)
    prefix = f"cache{ttl_ms}"
    client.set(f"{prefix}:x", "old")
    props = {
        "memcached.servers": memcached_server.bootstrap,
        "memcached.lookup.cache.size": 3,
        "memcached.lookup.cache.ttl.ms": ttl_ms,
    }
    with Engine(tmp_path / "data", fsync="never", properties=props) as engine:
        engine.execute(
            READINGS + f"CREATE STREAM e AS SELECT device, MEMCACHED_GET('{prefix}:' + device) "
            "AS v FROM readings;"
        )
        for device in ("a", "b", "c", "d", "e", "x"):
            engine.insert("readings", {"DEVICE": device, "SPEED": 1.0})
        engine.drain()
        lookup = memcached_functions.lookup_for(None)
        assert lookup.cached() == (3 if ttl_ms else 0)  # never more than its size
        client.set(f"{prefix}:x", "new")
        engine.insert("readings", {"DEVICE": "x", "SPEED": 2.0})
        engine.drain()
        values = [r["V"] for r in engine.query("SELECT * FROM e") if r["DEVICE"] == "x"]
    client.close()
    assert values == ["old", second]  # a cached value is kept for its TTL, then read again


@pytest.mark.slow
def test_memcached_away_holds_the_batch_until_it_is_back(
    tmp_path: Path, memcached_process: MemcachedProcess
) -> None:
    """Nothing is skipped: the query reads the batch again once memcached answers."""
    memcached_process.kill()
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS + "CREATE STREAM e AS SELECT device, "
            f"MEMCACHED_GET('k', '{memcached_process.address}') AS v FROM readings;"
        )
        engine.insert("readings", {"DEVICE": "a", "SPEED": 1.0})
        engine.start()
        wait_for(lambda: sum(engine.runtime.failures.values()) >= 1)
        assert engine.log.offsets("E", 0)[1] == 0  # held while memcached is away
        memcached_process.start()
        client = Client(("127.0.0.1", memcached_process.port), default_noreply=False)
        client.set("k", "late")
        client.close()
        wait_for(lambda: engine.log.offsets("E", 0)[1] == 1, timeout=20)
        assert engine.query("SELECT * FROM e") == [{"DEVICE": "a", "V": "late"}]


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "cannot be negative"), ("lots", "must be a whole number, not 'lots'")],
)
def test_a_bad_cache_setting_is_a_clear_error(tmp_path: Path, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Engine(tmp_path / "data", fsync="never", properties={"memcached.lookup.cache.size": value})
