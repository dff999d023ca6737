"""Produce inputs and run a `.process` query until killed; used by test_process_kill.py.

Usage: _process_child.py DATA_DIR TOTAL   (appends inputs up to TOTAL records, then drains)
"""

from __future__ import annotations

import json
import sys

from hispeed.engine import Engine
from hispeed.testing.children import feed_until_done
from tests.frames import _process_fns as fns


def main() -> None:
    data_dir, total = sys.argv[1], int(sys.argv[2])
    engine = Engine(data_dir, fsync="never")
    if "EVENTS" not in engine.catalog.sources:
        engine.execute(
            "CREATE STREAM events (k STRING KEY, v INT) WITH (kafka_topic='events', "
            "value_format='JSON', partitions=2);"
        )
        schema = {"n": "BIGINT", "total": "BIGINT"}
        engine.frame("events").process(fns.running_count, schema=schema).to_stream("counted")
    feed_until_done(
        engine,
        "events",
        total,
        lambda start, end: [(f"key{i % 7}", json.dumps({"V": i})) for i in range(start, end)],
    )


if __name__ == "__main__":
    main()
