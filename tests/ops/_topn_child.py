"""Append rows and run a Top-N query until killed; used by test_topn_kill.py.

Usage: _topn_child.py DATA_DIR TOTAL   (appends rows up to TOTAL, a chunk per drain)
"""

from __future__ import annotations

import json
import sys

from hispeed.engine import Engine
from hispeed.testing.children import feed_until_done


def row(i: int) -> dict[str, object]:
    """Row i: 5 groups, values without ties (104729 is prime to the modulus)."""
    return {"K": f"k{i}", "G": f"g{(i * 7919) % 5}", "V": (i * 104729) % 1_000_003, "T": 1000 + i}


def main() -> None:
    data_dir, total = sys.argv[1], int(sys.argv[2])
    engine = Engine(data_dir, fsync="never")
    if "S" not in engine.catalog.sources:
        engine.execute(
            "CREATE STREAM s (k STRING KEY, g STRING, v BIGINT, t BIGINT) WITH "
            "(kafka_topic='s', partitions=2, value_format='JSON', timestamp='t');"
        )
        engine.execute(
            "CREATE TABLE top4 WITH (key_format='JSON') AS SELECT * FROM (SELECT g, k, v, "
            "ROW_NUMBER() OVER (PARTITION BY g ORDER BY v DESC) AS rn FROM s) WHERE rn <= 4 "
            "EMIT CHANGES;"
        )
    feed_until_done(
        engine,
        "s",
        total,
        lambda start, end: [(f"k{i}", json.dumps(row(i))) for i in range(start, end)],
        chunk=23,
        rounds=2,
    )


if __name__ == "__main__":
    main()
