"""Redis connectors made with SQL and run by the engine: the seed's use cases end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis as redis_py

from hispeed.engine import Engine
from hispeed.testing.services import Service
from tests.conftest import wait_for
from tests.connectors.conftest import RedisProcess

pytestmark = pytest.mark.services


def test_a_leaderboard_and_a_latest_reading_cache_from_sql(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    p = redis_prefix
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM scores (player STRING KEY, points INT) "
            "WITH (kafka_topic='scores', value_format='JSON', partitions=1);"
            "CREATE TABLE hourly AS SELECT player, SUM(points) AS total FROM scores "
            "WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY player;"
            "CREATE STREAM readings (device STRING KEY, temp DOUBLE) "
            "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
            f"CREATE SINK CONNECTOR leaders WITH ('connector.class'='redis', "
            f"'redis.url'='{redis_server.url}', 'source'='HOURLY', 'redis.mode'='zset', "
            f"'zset.key'='{p}:leaderboard:{{WINDOWSTART}}', 'score.column'='TOTAL');"
            f"CREATE SINK CONNECTOR latest WITH ('connector.class'='redis', "
            f"'redis.url'='{redis_server.url}', 'source'='READINGS', 'redis.mode'='hash', "
            f"'key.template'='{p}:{{DEVICE}}:latest', 'ttl.seconds'='1800');"
        )
        engine.start()
        for player, points in (("ann", 5), ("bob", 7), ("ann", 4)):
            engine.insert("scores", {"PLAYER": player, "POINTS": points}, timestamp=1000)
        for device, temp in (("d1", 20.5), ("d2", 18.0), ("d1", 21.0)):
            engine.insert("readings", {"DEVICE": device, "TEMP": temp})
        board = f"{p}:leaderboard:0"
        wait_for(
            lambda: (
                redis_client.zrevrange(board, 0, -1, withscores=True)
                == [
                    ("ann", 9.0),
                    ("bob", 7.0),
                ]
            )
        )
        wait_for(lambda: redis_client.hgetall(f"{p}:d1:latest") == {"TEMP": "21.0"})
        assert redis_client.ttl(f"{p}:d1:latest") > 1790
        info = engine.execute("DESCRIBE CONNECTOR leaders;")[0].info
        assert info["details"]["mode"] == "zset"
        assert info["errors"] == 0


def test_a_sink_waits_out_a_redis_restart_and_loses_nothing(
    tmp_path: Path, redis_process: RedisProcess
) -> None:
    port = redis_process.port
    client = redis_py.Redis(port=port, decode_responses=True)
    try:
        with Engine(tmp_path / "data", fsync="never") as engine:
            engine.execute(
                "CREATE STREAM visits (page STRING KEY, user_id STRING) "
                "WITH (kafka_topic='visits', value_format='JSON', partitions=1);"
                "CREATE SINK CONNECTOR uniques WITH ('connector.class'='redis', "
                f"'redis.url'='redis://127.0.0.1:{port}', 'source'='VISITS', "
                "'redis.mode'='hll', 'key.template'='visitors:{PAGE}', "
                "'element.column'='USER_ID', 'redis.timeout.ms'='500');"
            )
            engine.insert("visits", {"PAGE": "/home", "USER_ID": "u1"})
            wait_for(lambda: client.pfcount("visitors:/home") == 1)
            redis_process.stop()  # Redis goes away, by its PID
            for user in ("u2", "u3", "u2"):
                engine.insert("visits", {"PAGE": "/home", "USER_ID": user})

            def state() -> str:
                return str(engine.execute("DESCRIBE CONNECTOR uniques;")[0].info["state"])

            wait_for(lambda: state() == "RETRYING")
            info = engine.execute("DESCRIBE CONNECTOR uniques;")[0].info
            assert "connector UNIQUES: Redis at" in info["lastError"]
            redis_process.start()  # empty again: no persistence; the lost visitor u1 is gone
            wait_for(lambda: state() == "RUNNING", timeout=15)
            wait_for(lambda: client.pfcount("visitors:/home") == 2)  # u2, u3: none lost
    finally:
        client.close()
