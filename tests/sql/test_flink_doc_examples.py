"""Flink's documented examples in Flink statements, each INSERT INTO a blackhole sink and
checked against DuckDB: a window Top-N over a window aggregation in one query, a Top-N that
does not output its rank, a window FULL JOIN that selects no key (docs/sql.md, "Queries in
Flink statements")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from hispeed.engine import Engine

BID = (
    "CREATE TABLE bid (bidtime TIMESTAMP(3), price BIGINT, supplier_id STRING, "
    "WATERMARK FOR bidtime AS bidtime) WITH ('connector' = 'kafka', 'topic' = 'bid', "
    "'format' = 'json', 'partitions' = '1');"
)
BIDS = [
    (1000, 5, "a"),
    (2000, 7, "b"),
    (3000, 4, "a"),
    (4000, 1, "c"),
    (12_000, 3, "c"),
    (13_000, 2, "a"),
    (14_000, 8, "b"),
    (25_000, 1, "a"),
    (40_000, 1, "a"),  # closes the windows before 40 s
]


def _final(engine: Engine, topic: str) -> list[dict[str, Any]]:
    """The table's rows, each key's last, key and value columns together."""
    table = engine.log.read_table(topic, 0)
    latest: dict[bytes, Any] = {}
    keys, values = table.column("key").to_pylist(), table.column("value").to_pylist()
    for k, v in zip(keys, values, strict=True):
        latest[k] = None if v is None else {**json.loads(k), **json.loads(v)}
    return [v for v in latest.values() if v is not None]


def test_window_top_n_over_a_window_aggregation_in_one_query(tmp_path: Path) -> None:
    """Flink's window Top-N example: the aggregation subquery is made a view of its own."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            BID + "CREATE TABLE top2 (window_start TIMESTAMP(3), window_end TIMESTAMP(3), "
            "supplier_id STRING, price BIGINT, cnt BIGINT, rownum BIGINT) "
            "WITH ('connector' = 'blackhole');"
            "INSERT INTO top2 SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
            "window_start, window_end ORDER BY price DESC) as rownum FROM (SELECT "
            "window_start, window_end, supplier_id, SUM(price) as price, COUNT(*) as cnt "
            "FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' SECONDS)) "
            "GROUP BY window_start, window_end, supplier_id)) WHERE rownum <= 2;"
        )
        for t, p, s in BIDS:
            engine.execute(
                "INSERT INTO bid (bidtime, price, supplier_id) VALUES "
                f"(FROM_UNIXTIME({t}), {p}, '{s}');"
            )
        engine.drain()
        got = sorted(
            (
                r["WINDOW_START"],
                r["WINDOW_END"],
                r["SUPPLIER_ID"],
                r["PRICE"],
                r["CNT"],
                r["ROWNUM"],
            )
            for r in _final(engine, "TOP2")
        )
    db = duckdb.connect()
    db.execute("CREATE TABLE bid (t BIGINT, price BIGINT, s VARCHAR)")
    db.executemany("INSERT INTO bid VALUES (?, ?, ?)", BIDS)
    expected = db.execute(
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY ws ORDER BY p DESC) AS rn "
        "FROM (SELECT t // 10000 * 10000 AS ws, t // 10000 * 10000 + 10000 AS we, s, "
        "SUM(price) AS p, COUNT(*) AS c FROM bid GROUP BY ALL)) "
        "WHERE rn <= 2 AND we <= 40000 ORDER BY ALL"
    ).fetchall()
    assert got == expected
    assert len(got) == 5


def test_top_n_without_its_rank_in_the_output(tmp_path: Path) -> None:
    """Flink's first Top-N example selects no rank: hispeed keys its result by the rank
    all the same (the sink's extra column)."""
    sales = [("p1", "x", 10), ("p2", "x", 30), ("p3", "x", 20), ("p4", "y", 5), ("p5", "y", 7)]
    sales += [("p2", "x", 1), ("p6", "x", 25)]  # p2 falls out of x's top 2
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE TABLE shop (product_id STRING, category STRING, sales BIGINT, "
            "PRIMARY KEY (product_id) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', "
            "'topic' = 'shop', 'key.format' = 'json', 'value.format' = 'json', "
            "'partitions' = '1');"
            "CREATE TABLE top (product_id STRING, category STRING, sales BIGINT) "
            "WITH ('connector' = 'blackhole');"
            "INSERT INTO top SELECT product_id, category, sales FROM (SELECT *, ROW_NUMBER() "
            "OVER (PARTITION BY category ORDER BY sales DESC) AS row_num FROM shop) "
            "WHERE row_num <= 2;"
        )
        for p, c, n in sales:
            engine.execute(
                f"INSERT INTO shop (product_id, category, sales) VALUES ('{p}', '{c}', {n});"
            )
        engine.drain()
        got = sorted((r["PRODUCT_ID"], r["CATEGORY"], r["SALES"]) for r in _final(engine, "TOP"))
    db = duckdb.connect()
    db.execute("CREATE TABLE shop (p VARCHAR PRIMARY KEY, c VARCHAR, n BIGINT)")
    db.executemany("INSERT OR REPLACE INTO shop VALUES (?, ?, ?)", sales)
    expected = db.execute(
        "SELECT p, c, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY c ORDER BY n DESC) "
        "AS rn FROM shop) WHERE rn <= 2 ORDER BY ALL"
    ).fetchall()
    assert got == expected


def test_window_full_join_without_a_key(tmp_path: Path) -> None:
    """Flink's window FULL JOIN example: no ROWKEY to select, as a Flink row has no key."""
    left = [(1000, 1, "L1"), (2000, 2, "L2"), (6000, 3, "L3"), (30_000, 9, "Lz")]
    right = [(1500, 2, "R2"), (3000, 4, "R4"), (7000, 3, "R3"), (30_000, 9, "Rz")]
    with Engine(tmp_path / "data") as engine:
        for name in ("lt", "rt"):
            engine.execute(
                f"CREATE TABLE {name} (row_time TIMESTAMP(3), num INT, id STRING, WATERMARK "
                f"FOR row_time AS row_time) WITH ('connector' = 'kafka', 'topic' = '{name}', "
                "'format' = 'json', 'partitions' = '1');"
            )
        engine.execute(
            "CREATE TABLE joined (l_num INT, l_id STRING, r_num INT, r_id STRING, "
            "window_start TIMESTAMP(3), window_end TIMESTAMP(3)) "
            "WITH ('connector' = 'blackhole');"
            "INSERT INTO joined SELECT L.num as L_Num, L.id as L_Id, R.num as R_Num, "
            "R.id as R_Id, COALESCE(L.window_start, R.window_start) as window_start, "
            "COALESCE(L.window_end, R.window_end) as window_end FROM (SELECT * FROM "
            "TABLE(TUMBLE(TABLE lt, DESCRIPTOR(row_time), INTERVAL '5' SECONDS))) L FULL JOIN "
            "(SELECT * FROM TABLE(TUMBLE(TABLE rt, DESCRIPTOR(row_time), INTERVAL '5' "
            "SECONDS))) R ON L.num = R.num AND L.window_start = R.window_start AND "
            "L.window_end = R.window_end;"
        )
        for name, rows in (("lt", left), ("rt", right)):
            for t, n, i in rows:
                engine.execute(
                    f"INSERT INTO {name} (row_time, num, id) VALUES "
                    f"(FROM_UNIXTIME({t}), {n}, '{i}');"
                )
        engine.drain()
        table = engine.log.read_table("JOINED", 0)
        got = sorted(
            (
                (r["L_NUM"], r["L_ID"], r["R_NUM"], r["R_ID"], r["WINDOW_START"], r["WINDOW_END"])
                for r in map(json.loads, table.column("value").to_pylist())
            ),
            key=repr,
        )
    db = duckdb.connect()
    for name, rows in (("lt", left), ("rt", right)):
        db.execute(
            f"CREATE TABLE {name} AS SELECT t, n, i, t // 5000 * 5000 AS ws, "
            "t // 5000 * 5000 + 5000 AS we FROM (VALUES (0, 0, '')) v(t, n, i) WHERE false"
        )
        db.executemany(
            f"INSERT INTO {name} VALUES (?, ?, ?, ? // 5000 * 5000, ? // 5000 * 5000 + 5000)",
            [(t, n, i, t, t) for t, n, i in rows],
        )
    expected = sorted(
        db.execute(
            "SELECT l.n, l.i, r.n, r.i, COALESCE(l.ws, r.ws), COALESCE(l.we, r.we) FROM lt l "
            "FULL JOIN rt r ON l.n = r.n AND l.ws = r.ws WHERE COALESCE(l.we, r.we) <= 30000"
        ).fetchall(),
        key=repr,
    )
    assert got == expected
    assert len(got) == 4
