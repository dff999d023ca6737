"""A window aggregation grouped by the window alone has no key column: its records' keys are
the window's bytes after an empty key, in any key format. With `key_format='JSON'` the
readers took that empty key for JSON and dropped every row, so pull queries were empty
(an adversarial finding); a source without key columns ignores its key's bytes, as ksqlDB's
key serde for an empty key schema does. Checked against DuckDB's windows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from hispeed.engine import Engine

TIMES = [1000, 2000, 12000, 25000, 41000, 43000, 47000, 61000]


@pytest.mark.parametrize("key_format", ["JSON", "KAFKA"])
def test_window_only_aggregation_reads_back_in_pull_queries(
    tmp_path: Path, key_format: str
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM s (k STRING KEY, v INT, ts BIGINT) WITH (kafka_topic='s', "
            "value_format='JSON', partitions=1, timestamp='ts');"
            f"CREATE TABLE per_window WITH (key_format='{key_format}') AS "
            "SELECT window_start, window_end, COUNT(*) AS c, SUM(v) AS total "
            "FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '10' SECOND)) "
            "GROUP BY window_start, window_end;"
        )
        for i, ts in enumerate(TIMES):
            engine.insert("s", {"K": f"k{i}", "V": i, "TS": ts}, timestamp=ts)
        engine.drain()
        got = sorted(
            (r["WINDOW_START"], r["WINDOW_END"], r["C"], r["TOTAL"])
            for r in engine.query("SELECT * FROM per_window;")
        )
    con = duckdb.connect()
    con.execute("CREATE TABLE s (v INTEGER, ts BIGINT)")
    con.executemany("INSERT INTO s VALUES (?, ?)", list(enumerate(TIMES)))
    # a window is output once stream time (the newest ts) reaches its end
    expected = con.execute(
        "SELECT ts // 10000 * 10000 AS ws, ws + 10000, COUNT(*), SUM(v) FROM s "
        "GROUP BY ws HAVING ws + 10000 <= (SELECT max(ts) FROM s) ORDER BY ws"
    ).fetchall()
    assert len(expected) == 4
    assert got == [tuple(r) for r in expected]
