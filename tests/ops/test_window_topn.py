"""Window Top-N: ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY ...) over a
window table function's aggregation (a windowed table: its rows keyed by their key and
window), kept as the aggregation's rows change; the final table equals DuckDB's over the same
bids (decoded with `json`, not hispeed)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb

from hispeed.engine import Engine

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()


def test_window_top_n_over_a_window_aggregation_matches_duckdb(tmp_path: Path) -> None:
    rng = random.Random(11)
    bids = [
        {"AUCTION": rng.randrange(6), "PRICE": rng.randrange(100), "DATETIME": 37 * i}
        for i in range(400)
    ]
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE STREAM bid (auction BIGINT, price BIGINT, dateTime BIGINT) WITH "
            "(kafka_topic='bid', partitions=1, value_format='JSON', timestamp='dateTime');"
        )
        engine.execute(
            "CREATE TABLE volume AS SELECT window_start, window_end, auction, SUM(price) AS "
            "total FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECONDS)) "
            "GROUP BY window_start, window_end, auction EMIT CHANGES;"
        )
        engine.execute(
            "CREATE TABLE top2 WITH (key_format='JSON') AS SELECT * FROM (SELECT window_start, "
            "window_end, auction, total, ROW_NUMBER() OVER (PARTITION BY window_start, "
            "window_end ORDER BY total DESC) AS rn FROM volume) WHERE rn <= 2 EMIT CHANGES;"
        )
        for start in range(0, len(bids), 40):  # the sums change across batches
            engine.log.append(
                "bid", [(None, json.dumps(b).encode()) for b in bids[start : start + 40]]
            )
            engine.drain()
        table = engine.log.read_table("TOP2", 0).to_pylist()
    latest: dict[bytes, Any] = {}
    for r in table:
        latest[r["key"]] = (
            None if r["value"] is None else {**json.loads(r["key"]), **json.loads(r["value"])}
        )
    got = {(v["WINDOW_START"], v["RN"], v["TOTAL"]) for v in latest.values() if v is not None}
    bid = DUCK.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"({b['AUCTION']}, {b['PRICE']}, {b['DATETIME']})" for b in bids)
        + ") as t(auction, price, t)"
    )
    expected = DUCK.sql(
        "select ws, rn, total from (select ws, total, row_number() over (partition by ws "
        "order by total desc) as rn from (select t // 2000 * 2000 as ws, auction, "
        "sum(price) as total from bid group by ws, auction)) where rn <= 2"
    ).fetchall()
    assert len(expected) > 12
    # equal totals may rank either way: each window's ranks and their totals
    assert got == set(expected)
    assert len(table) > len(expected)  # ranks were rewritten as the sums grew
