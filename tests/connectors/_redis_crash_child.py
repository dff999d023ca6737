"""A hispeed process for the crash test: it appends the inputs that are not yet in the log
(a chunk at a time), runs a table query and three Redis sinks, and prints "done" once every
input is in and every sink has written everything. The test kills it with SIGKILL, then
starts it again on the same data directory."""

from __future__ import annotations

import json
import sys
import time

from hispeed.engine import Engine

TOTAL = 3000
CHUNK = 50
PLAYERS = 40


def record(n: int) -> tuple[bytes, bytes]:
    player = f"p{(n * 7) % PLAYERS}"
    return player.encode(), json.dumps({"points": n % 13 + 1, "game": f"g{n % 5}"}).encode()


def main(data_dir: str, redis_url: str, prefix: str) -> None:
    import faulthandler

    faulthandler.dump_traceback_later(100, exit=True)  # a hang shows where, in the test
    engine = Engine(data_dir, fsync="always", properties={"redis.url": redis_url})
    # every statement with IF NOT EXISTS: a kill may land between two of them
    engine.execute(
        "CREATE STREAM IF NOT EXISTS scores (player STRING KEY, points INT, game STRING) "
        "WITH (kafka_topic='scores', value_format='JSON', partitions=1);"
        "CREATE TABLE IF NOT EXISTS totals AS SELECT player, SUM(points) AS total, "
        "COUNT(*) AS games FROM scores GROUP BY player;"
        "CREATE SINK CONNECTOR IF NOT EXISTS board WITH ('connector.class'='redis', "
        f"'source'='TOTALS', 'redis.mode'='zset', 'zset.key'='{prefix}:board', "
        "'score.column'='TOTAL');"
        "CREATE SINK CONNECTOR IF NOT EXISTS cache WITH ('connector.class'='redis', "
        f"'source'='TOTALS', 'redis.mode'='hash', 'key.template'='{prefix}:player:{{KEY}}');"
        "CREATE SINK CONNECTOR IF NOT EXISTS log WITH ('connector.class'='redis', "
        f"'source'='SCORES', 'redis.mode'='stream', 'key.template'='{prefix}:scores');"
    )
    engine.start()
    while True:
        have = engine.log.offsets("scores", 0)[1]
        if have >= TOTAL:
            break
        engine.log.append("scores", [record(n) for n in range(have, min(TOTAL, have + CHUNK))])
        # the test kills after a number of these: a moment set by progress, not the clock
        print(f"progress {have}", flush=True)
        time.sleep(0.005)  # a rate, so the queries and sinks run while inputs still come
    while True:
        task_lag = sum(  # the query first: what it writes then feeds the sinks
            engine.log.offsets("scores", 0)[1] - t.consumer.position(tp)
            for t in engine.tasks.values()
            for tp in t.consumer.assignment()
        )
        rows = engine.connectors.rows()
        lags = [engine.connectors.describe(r["name"])["lag"] for r in rows]
        if len(rows) == 3 and all(lag == 0 for lag in lags) and task_lag == 0:
            break
        time.sleep(0.05)
    print("done", flush=True)
    engine.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
