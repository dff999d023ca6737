"""Produce inputs and run queries until killed; used by test_exactly_once.py.

Usage: _engine_child.py DATA_DIR TOTAL   (appends inputs up to TOTAL records, then drains)
"""

from __future__ import annotations

import json
import sys

from hispeed.engine import Engine
from hispeed.testing.children import feed_until_done


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
    feed_until_done(
        engine,
        "events",
        total,
        lambda start, end: [(f"key{i % 7}", json.dumps({"V": i})) for i in range(start, end)],
    )


if __name__ == "__main__":
    main()
