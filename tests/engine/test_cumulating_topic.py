"""A CUMULATE aggregation's topic read back by a source declared over it: DESCRIBE and the
REST API call its windows CUMULATING, and WINDOW_TYPE='CUMULATING' is what declares them
(it was refused: the WITH clause knew ksqlDB's three kinds only)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hispeed.engine import Engine

ROWS = [("a", 500), ("a", 1500), ("b", 2500), ("a", 4200), ("b", 7999), ("z", 20_000)]
STEP, SIZE = 1000, 4000


def expected() -> Counter[tuple[str, int, int]]:
    """Each row counted in every CUMULATE window of its span that ends after it."""
    counts: Counter[tuple[str, int, int]] = Counter()
    for key, ts in ROWS:
        start = ts // SIZE * SIZE
        for end in range(start + STEP, start + SIZE + 1, STEP):
            if end > ts and end <= 20_000:  # the last row's time closes the earlier windows
                counts[(key, start, end)] += 1
    return counts


def test_a_cumulating_topic_is_declared_and_read_as_cumulating(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM s (id STRING KEY, a INT) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        for key, ts in ROWS:
            engine.insert("s", {"ID": key, "A": 1}, timestamp=ts)
        engine.execute(
            "CREATE TABLE c AS SELECT id, COUNT(*) AS n FROM TABLE(CUMULATE(TABLE s, "
            "DESCRIPTOR(ROWTIME), INTERVAL '1' SECOND, INTERVAL '4' SECOND)) "
            "GROUP BY id, window_start, window_end EMIT FINAL;"
        )
        engine.drain()
        assert engine.execute("DESCRIBE c;")[0].info["windowType"] == "CUMULATING"
        engine.execute(
            "CREATE TABLE copy (id STRING PRIMARY KEY, n BIGINT) WITH (kafka_topic='C', "
            "value_format='JSON', window_type='cumulating', window_size='4 SECONDS');"
        )
        assert engine.execute("DESCRIBE copy;")[0].info["windowType"] == "CUMULATING"
        want = expected()
        with engine.stream(
            f"SELECT * FROM copy EMIT CHANGES LIMIT {len(want)};", from_beginning=True
        ) as rows:
            got = Counter({(r["ID"], r["WINDOWSTART"], r["WINDOWEND"]): r["N"] for r in rows})
        assert got == want
