"""Produce inputs and run queries until killed; used by test_exactly_once.py.

Usage: _engine_child.py DATA_DIR TOTAL   (appends inputs up to TOTAL records, then drains)
"""

from __future__ import annotations

import json
import sys

from hispeed.engine import Engine


def main() -> None:
    data_dir, total = sys.argv[1], int(sys.argv[2])
    # per-record output, so the test can check every change
    engine = Engine(
        data_dir, fsync="never", properties={"ksql.streams.cache.max.bytes.buffering": "0"}
    )
    if "EVENTS" not in engine.catalog.sources:
        engine.execute(
            "CREATE STREAM events (k STRING KEY, v INT) WITH (kafka_topic='events', "
            "value_format='JSON', partitions=2);"
            "CREATE STREAM doubled AS SELECT k, v * 2 AS v2 FROM events;"
            "CREATE TABLE counts AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events "
            "GROUP BY k;"
        )
    print("ready", flush=True)
    produced = sum(engine.log.offsets("events", p)[1] for p in range(2))
    while produced < total:
        chunk = [
            (f"key{i % 7}", json.dumps({"V": i}))
            for i in range(produced, min(produced + 37, total))
        ]
        engine.log.append("events", chunk)
        produced += len(chunk)
        engine.drain(max_rounds=3)
        # the parent kills after a number of these: a moment set by progress, not the clock
        print(f"progress {produced}", flush=True)
    engine.drain()
    print("done", flush=True)
    engine.close()


if __name__ == "__main__":
    main()
