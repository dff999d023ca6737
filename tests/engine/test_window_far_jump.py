"""Every window a window table function's aggregation closes is output, however far stream
time jumps past it (docs/sql.md, "What is emitted when"): a record 80 years, 300 years or a
nanosecond epoch time (1.7e18, a producer's mistake) ahead closes every open window, and each is
written, checked against DuckDB's aggregation of the same rows."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
import pytest

from hispeed.engine import Engine

SIZE = 10_000


@pytest.mark.parametrize(
    "jump", [2_524_608_000_000, 9_467_280_000_000, 1_733_500_000_000_000_000]
)  # 80 years, 300 years, epoch nanoseconds
@pytest.mark.parametrize("tvf", ["TUMBLE", "HOP"])
def test_a_far_jump_of_stream_time_outputs_every_window_it_closes(tvf: str, jump: int) -> None:
    rows = [("a", 0), ("b", 3000), ("a", 12_500), ("a", 19_000), ("b", jump), ("a", jump + 25_000)]
    spec = (
        "INTERVAL '10' SECONDS"
        if tvf == "TUMBLE"
        else "INTERVAL '5' SECONDS, INTERVAL '10' SECONDS"
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(
            Path(tmp) / "data",
            fsync="never",
            properties={"ksql.streams.cache.max.bytes.buffering": "0"},
        )
        try:
            engine.execute(
                "CREATE STREAM s (k STRING KEY, g STRING, t BIGINT) WITH (kafka_topic='s', "
                "value_format='JSON', partitions=1, timestamp='t');"
                "CREATE TABLE c AS SELECT window_start, window_end, COUNT(*) AS n, "
                "COUNT_DISTINCT(g) AS gs "
                f"FROM TABLE({tvf}(TABLE s, DESCRIPTOR(t), {spec})) "
                "GROUP BY window_start, window_end;"
            )
            for i, (g, t) in enumerate(rows):
                engine.insert("s", {"K": str(i), "G": g, "T": t})
                engine.drain()
            states = {q["id"]: q["state"] for q in engine.execute("SHOW QUERIES;")[0].rows}
            assert set(states.values()) == {"RUNNING"}
            printed = engine.execute("PRINT 'C' FROM BEGINNING LIMIT 100;")[0].rows
            got = sorted(
                (v["WINDOW_START"], v["WINDOW_END"], v["N"], v["GS"])
                for v in (json.loads(r["value"]) for r in printed)
            )
        finally:
            engine.close()
    con = duckdb.connect()
    con.execute("CREATE TABLE s (g VARCHAR, t BIGINT)")
    con.executemany("INSERT INTO s VALUES (?, ?)", rows)
    slide = SIZE if tvf == "TUMBLE" else 5_000
    # each row's windows: the starts k * slide with start <= t < start + SIZE; a window is
    # output once stream time (the newest row's time, rows in order) reaches its end
    expected = con.execute(
        f"""
        WITH w AS (
            SELECT g, (t - t % {slide}) - k * {slide} AS ws FROM s,
            range(0, {SIZE // slide}) AS r(k)
        )
        SELECT ws, ws + {SIZE}, count(*), count(DISTINCT g) FROM w
        WHERE ws >= 0 AND ws + {SIZE} <= (SELECT max(t) FROM s)
        GROUP BY ws ORDER BY ALL
        """
    ).fetchall()
    assert got == [tuple(r) for r in expected]
    assert any(e[0] == 0 for e in expected)  # the windows the jump closes are among them
