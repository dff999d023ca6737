"""A stream enriched from Redis in SQL: REDIS_HASH and REDIS_GET, through their cache."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_py

from hispeed.engine import Engine
from hispeed.functions import redis as redis_functions
from hispeed.testing.services import Service
from tests.conftest import wait_for

pytestmark = pytest.mark.services

READINGS = (
    "CREATE STREAM readings (device STRING KEY, speed DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


def test_a_stream_joined_to_hashes_and_strings_in_redis(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    url = f"redis://{redis_server.host}:{redis_server.port}"
    redis_client.hset(f"{redis_prefix}:device:d1", mapping={"owner": "ana", "room": "lab"})
    redis_client.set(f"{redis_prefix}:label:d1", "the first")
    with Engine(tmp_path / "data", fsync="never", properties={"redis.url": url}) as engine:
        engine.execute(
            READINGS + "CREATE STREAM enriched AS SELECT r.device, r.speed, "
            f"REDIS_HASH('{redis_prefix}:device:' + r.device)['owner'] AS owner, "
            f"REDIS_HASH('{redis_prefix}:device:' + r.device) AS info, "
            f"REDIS_GET('{redis_prefix}:label:' + r.device) AS label "
            "FROM readings r;"
        )
        engine.insert("readings", {"DEVICE": "d1", "SPEED": 1.0})
        engine.insert("readings", {"DEVICE": "d2", "SPEED": 2.0})  # nothing in Redis: NULLs
        engine.drain()
        rows = engine.query("SELECT * FROM enriched")
    assert rows == [
        {
            "DEVICE": "d1",
            "SPEED": 1.0,
            "OWNER": "ana",
            "INFO": {"owner": "ana", "room": "lab"},
            "LABEL": "the first",
        },
        {"DEVICE": "d2", "SPEED": 2.0, "OWNER": None, "INFO": None, "LABEL": None},
    ]


def test_the_cache_is_bounded_in_time(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    url = f"redis://{redis_server.host}:{redis_server.port}"
    key = f"{redis_prefix}:owner"
    redis_client.set(key, "ana")
    with Engine(tmp_path / "data", fsync="never", properties={"redis.url": url}) as engine:
        engine.execute(
            READINGS + f"CREATE STREAM enriched AS SELECT device, REDIS_GET('{key}') AS owner "
            "FROM readings;"
        )
        engine.insert("readings", {"DEVICE": "a", "SPEED": 1.0})
        engine.drain()
        redis_client.set(key, "bo")
        engine.insert("readings", {"DEVICE": "b", "SPEED": 1.0})  # within the second: cached
        engine.drain()
        time.sleep(redis_functions.TTL_MS / 1000 + 0.1)
        engine.insert("readings", {"DEVICE": "c", "SPEED": 1.0})  # after it: read again
        engine.drain()
        owners = [r["OWNER"] for r in engine.query("SELECT * FROM enriched")]
    assert owners == ["ana", "ana", "bo"]


def test_a_lookup_names_its_redis_when_given(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    url = f"redis://{redis_server.host}:{redis_server.port}"
    redis_client.set(f"{redis_prefix}:x", "found")
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS
            + f"CREATE STREAM e AS SELECT device, REDIS_GET('{redis_prefix}:x', '{url}') AS v "
            "FROM readings;"
        )
        engine.insert("readings", {"DEVICE": "a", "SPEED": 1.0})
        engine.drain()
        assert engine.query("SELECT * FROM e") == [{"DEVICE": "a", "V": "found"}]


def test_redis_away_holds_the_batch_until_it_is_back(tmp_path: Path) -> None:
    """Nothing is skipped: the query reads the batch again once Redis answers."""
    from hispeed.connectors.embedded_redis import EmbeddedRedis, find_binary
    from hispeed.testing.services import free_port

    port = free_port()
    url = f"redis://127.0.0.1:{port}"
    redis = EmbeddedRedis(tmp_path, find_binary())
    redis.start(port)  # the value goes into its append-only file, there when it comes back
    with redis_py.Redis(port=port) as client:
        client.set("k", "late")
    redis.stop()
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS + f"CREATE STREAM e AS SELECT device, REDIS_GET('k', '{url}') AS v "
            "FROM readings;"
        )
        engine.insert("readings", {"DEVICE": "a", "SPEED": 1.0})
        engine.start()
        # its own progress: the query has tried the batch and failed on Redis being away
        wait_for(lambda: sum(engine.runtime.failures.values()) >= 1)
        assert engine.log.offsets("E", 0)[1] == 0  # held while Redis is away
        redis.start(port)
        try:
            wait_for(lambda: engine.log.offsets("E", 0)[1] == 1, timeout=15)
            assert engine.query("SELECT * FROM e") == [{"DEVICE": "a", "V": "late"}]
        finally:
            redis.stop()


def test_lookup_arguments_are_checked(tmp_path: Path) -> None:
    from hispeed.errors import HispeedError

    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(READINGS)
        with pytest.raises(HispeedError, match="REDIS_GET"):
            engine.execute("CREATE STREAM e AS SELECT device, REDIS_GET(speed) AS v FROM readings;")


def test_the_lookups_close_their_connections_when_the_process_ends(
    redis_server: Service, redis_prefix: str
) -> None:
    # a lookup's connection lives as long as the process: at its end it is closed, not left
    # for the interpreter's shutdown to find open (a ResourceWarning in `python -X dev`)
    url = f"redis://{redis_server.host}:{redis_server.port}"
    script = (
        "from hispeed.functions import redis as r; "
        f"print(r._lookup({url!r}, 'string').get_many([{redis_prefix + ':nope'!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[None]"
    assert "unclosed" not in done.stderr, done.stderr
