"""Redis killed (SIGKILL) and started again mid-stream under a Redis sink connector.

Records keep arriving while Redis is down. What users rely on: the connector says RETRYING
while Redis is away and RUNNING once it is back, and every record reaches Redis, with its
values, nothing lost (the Redis keeps its data across its restart: append-only file, fsync
always, so what it acknowledged before the kill is Redis's to keep, the rest is hispeed's).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py

from hispeed.engine import Engine
from hispeed.testing.services import require_binary
from hispeed.testing.wait import wait_for
from tests.connectors.conftest import RedisProcess

pytestmark = [pytest.mark.slow, pytest.mark.services]

N = 3_000  # records, each its own Redis hash
BATCH = 50


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    process = RedisProcess(require_binary("redis-server", "redis-server"), workdir, durable=True)
    process.start()
    yield process
    process.stop()


def _state(engine: Engine) -> str:
    return str(next(r["state"] for r in engine.connectors.rows() if r["name"] == "FEATURES"))


def test_a_redis_restart_mid_stream_loses_nothing_and_the_sink_runs_again(
    tmp_path: Path, durable_redis: RedisProcess
) -> None:
    rng = random.Random(20261206)
    client = redis_py.Redis(port=durable_redis.port, socket_timeout=10)
    produced = threading.Event()
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM s (k STRING KEY, v INT) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=2);"
            "CREATE SINK CONNECTOR features WITH ('connector.class'='redis', 'source'='S', "
            f"'redis.url'='{durable_redis.url}', 'redis.mode'='hash', "
            "'key.template'='f:{K}');"
        )
        engine.start()
        wait_for(lambda: _state(engine) == "RUNNING", timeout=30)
        redis_down = threading.Event()

        def produce() -> None:
            # the second half is produced only once Redis is down, so the sink has work to
            # retry whatever the timing
            for start in range(0, N, BATCH):
                if start == N // 2:
                    redis_down.wait(60)
                engine.log.append(
                    "s",
                    [(f"r{i}", json.dumps({"v": i})) for i in range(start, start + BATCH)],
                )
            produced.set()

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        # killed once Redis holds a random share of the first half: a moment chosen by progress
        kill_at = rng.randint(100, N // 2 - BATCH)
        wait_for(lambda: len(client.keys("f:*")) >= kill_at, timeout=60)
        durable_redis.kill()
        redis_down.set()
        wait_for(lambda: _state(engine) == "RETRYING", timeout=60)
        assert produced.wait(60)
        durable_redis.start()
        wait_for(lambda: _state(engine) == "RUNNING", timeout=60)
        wait_for(lambda: len(client.keys("f:*")) >= N, timeout=90)
        producer.join(10)
    pipe = client.pipeline()
    for i in range(N):
        pipe.hget(f"f:r{i}", "V")
    values = pipe.execute()
    missing = [i for i, v in enumerate(values) if v is None]
    assert not missing, f"{len(missing)} records never reached Redis: {missing[:5]}"
    assert [int(v) for v in values] == list(range(N))
    assert len(client.keys("f:*")) == N
    client.close()
