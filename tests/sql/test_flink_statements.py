"""Flink statements past the DDL's first cut: DROP of what a Flink statement made, the sink's
declared types against the query's, subqueries made views, window views read as streams,
and TIMESTAMP +/- INTERVAL (docs/sql.md, "Flink SQL's DDL"). Outputs decoded with `json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.sql.flink import FlinkTable
from hispeed.sql.parser import parse_one

ORDERS = (
    "CREATE TABLE orders (id BIGINT, amount INT, note VARCHAR, `ts` TIMESTAMP(3), "
    "WATERMARK FOR `ts` AS `ts`) WITH ('connector' = 'kafka', 'topic' = 'orders', "
    "'format' = 'json', 'partitions' = '1');"
)


def _rows(engine: Engine, topic: str) -> list[Any]:
    values = engine.log.read_table(topic, 0).column("value").to_pylist()
    return [None if v is None else json.loads(v) for v in values]


def _order(engine: Engine, i: int, amount: int, ts_ms: int) -> None:
    engine.execute(
        f"INSERT INTO orders (id, amount, note, ts) VALUES ({i}, {amount}, 'n{i}', "
        f"FROM_UNIXTIME({ts_ms}));"
    )


def test_drop_table_of_a_sink_its_insert_made_a_stream(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            ORDERS + "CREATE TABLE big (id BIGINT) WITH ('connector' = 'blackhole');"
            "INSERT INTO big SELECT id FROM orders WHERE amount > 10;"
        )
        assert engine.catalog.sources["BIG"].kind == "STREAM"
        # Flink says DROP TABLE of any table; what its INSERT made goes with it
        engine.execute("DROP TABLE big;")
        assert "BIG" not in engine.catalog.sources
        assert "BIG" not in engine.catalog.flink
    with Engine(tmp_path / "data") as engine:
        assert "BIG" not in engine.catalog.sources


def test_drop_view(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            ORDERS + "CREATE VIEW big AS SELECT id, amount FROM orders WHERE amount > 10;"
            "CREATE VIEW stamped AS SELECT *, PROCTIME() AS p FROM orders;"
        )
        engine.execute("DROP VIEW big;")
        engine.execute("DROP VIEW stamped;")
        assert "BIG" not in engine.catalog.sources
        assert "STAMPED" not in engine.catalog.flink_views
        result = engine.execute("DROP VIEW IF EXISTS big;")
        assert "does not exist" in str(result[0].message)
        with pytest.raises(SqlError, match="View NONE does not exist") as caught:
            engine.execute("DROP VIEW IF EXISTS big;\n  DROP VIEW none;")
        assert (caught.value.line, caught.value.column) == (2, 3)


def test_insert_into_a_sink_of_other_types_is_cast_or_refused(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            ORDERS + "CREATE TABLE wide (id BIGINT, amount BIGINT, share DECIMAL(10, 2)) "
            "WITH ('connector' = 'print');"
            "CREATE TABLE wrong (id BIGINT, amount BIGINT) WITH ('connector' = 'print');"
        )
        # INT into BIGINT and INT into DECIMAL: Flink's implicit casts, applied
        engine.execute("INSERT INTO wide SELECT id, amount, amount FROM orders;")
        columns = {c.name: str(c.type) for c in engine.catalog.sources["WIDE"].value_columns}
        assert columns == {"ID": "BIGINT", "AMOUNT": "BIGINT", "SHARE": "DECIMAL(10, 2)"}
        _order(engine, 1, 7, 1000)
        engine.drain()
        assert _rows(engine, "WIDE") == [{"ID": 1, "AMOUNT": 7, "SHARE": 7.0}]
        # a VARCHAR into a BIGINT: refused, as Flink does, at the query's column
        with pytest.raises(SqlError, match="Incompatible types for sink column 'AMOUNT'") as e:
            engine.execute("INSERT INTO wrong SELECT id,\n  note FROM orders;")
        assert (e.value.line, e.value.column) == (2, 3)
        assert "the query gives STRING, the sink declares BIGINT" in str(e.value)
        assert "WRONG" not in engine.catalog.sources


def test_a_window_views_rows_come_once_as_a_stream_joined_on_equal_times(
    tmp_path: Path,
) -> None:
    """A TUMBLE aggregation's view is a stream of each window's row once; two of them joined
    on equal window ends (an interval join of 0), and a subquery as the join's input."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            ORDERS + "CREATE VIEW per_id AS SELECT id, SUM(amount) AS total, "
            "window_end AS wend FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(`ts`), "
            "INTERVAL '10' SECOND)) GROUP BY id, window_start, window_end;"
            "CREATE TABLE best (id BIGINT, total INT, wend TIMESTAMP(3)) "
            "WITH ('connector' = 'blackhole');"
            "INSERT INTO best SELECT P.id, P.total, P.wend FROM per_id AS P\n"
            "JOIN (SELECT wend, MAX(total) AS top FROM per_id GROUP BY wend) AS M\n"
            "  ON P.wend = M.wend AND P.total >= M.top;"
        )
        assert engine.catalog.sources["PER_ID"].kind == "STREAM"
        for key, amount, ts in [(1, 5, 1000), (2, 7, 2000), (1, 4, 3000), (2, 1, 12_000)]:
            _order(engine, key, amount, ts)
        _order(engine, 3, 9, 13_000)
        _order(engine, 9, 0, 25_000)  # closes the second window
        # the maxima are a window aggregation over the windows' rows: a window's maximum
        # comes when a later window's rows come (here the third's, closed at 35 s)
        _order(engine, 9, 0, 35_000)
        engine.drain()
        topic = engine.catalog.sources["PER_ID"].topic  # the windowed table's
        per_id = sorted((r["ID"], r["TOTAL"]) for r in _rows(engine, topic))
        assert per_id == [(1, 9), (2, 1), (2, 7), (3, 9), (9, 0)]  # each window's row once
        best = sorted((r["ID"], r["TOTAL"]) for r in _rows(engine, "BEST"))
        assert best == [(1, 9), (3, 9)]


def test_a_subquery_joined_outside_flink_statements_is_refused_at_its_place(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE STREAM s (k INT, v INT) WITH (kafka_topic='s', value_format='JSON', "
            "partitions=1);"
        )
        with pytest.raises(SqlError, match="supported in Flink statements") as caught:
            engine.execute(
                "CREATE STREAM j AS SELECT s.v FROM s\n  JOIN (SELECT k FROM s) t "
                "WITHIN 1 SECOND ON s.k = t.k;"
            )
        assert (caught.value.line, caught.value.column) == (2, 8)


def test_timestamp_plus_or_minus_an_interval(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            ORDERS + "CREATE TABLE shifted (id BIGINT, before TIMESTAMP(3), after TIMESTAMP(3)) "
            "WITH ('connector' = 'blackhole');"
            "INSERT INTO shifted SELECT id, `ts` - INTERVAL '1' SECOND, "
            "`ts` + INTERVAL '2' MINUTE FROM orders;"
        )
        _order(engine, 1, 1, 10_000)
        engine.drain()
        assert _rows(engine, "SHIFTED") == [{"ID": 1, "BEFORE": 9_000, "AFTER": 130_000}]


BIDS = (
    "CREATE TABLE items (id BIGINT, cat BIGINT, opens TIMESTAMP(3), closes TIMESTAMP(3), "
    "WATERMARK FOR opens AS opens) WITH ('connector' = 'kafka', 'topic' = 'items', "
    "'format' = 'json', 'partitions' = '1');"
    "CREATE TABLE offers (item BIGINT, price BIGINT, `at` TIMESTAMP(3), "
    "WATERMARK FOR `at` AS `at`) WITH ('connector' = 'kafka', 'topic' = 'offers', "
    "'format' = 'json', 'partitions' = '1');"
)


def _fill(engine: Engine) -> None:
    for i, cat, opens, closes in [(1, 10, 1000, 5000), (2, 10, 2000, 9000), (3, 20, 3000, 4000)]:
        engine.execute(
            f"INSERT INTO items (id, cat, opens, closes) VALUES ({i}, {cat}, "
            f"FROM_UNIXTIME({opens}), FROM_UNIXTIME({closes}));"
        )
    # item 1: 7 in time, 9 too late; item 2: 4 then 6; item 3: 8 before it opened
    for item, price, at in [(1, 7, 1500), (2, 4, 2500), (3, 8, 2900), (2, 6, 8000), (1, 9, 6000)]:
        engine.execute(
            f"INSERT INTO offers (item, price, at) VALUES ({item}, {price}, FROM_UNIXTIME({at}));"
        )


def _keyed_rows(engine: Engine, topic: str) -> list[tuple[bytes, Any]]:
    table = engine.log.read_table(topic, 0)
    keys, values = table.column("key").to_pylist(), table.column("value").to_pylist()
    return [(k, json.loads(v)) for k, v in zip(keys, values, strict=True)]


def _bigint(key: bytes) -> int:
    return int.from_bytes(key, "big", signed=True)


def _final_rows(engine: Engine, topic: str) -> dict[bytes, Any]:
    table = engine.log.read_table(topic, 0)
    latest: dict[bytes, Any] = {}
    keys, values = table.column("key").to_pylist(), table.column("value").to_pylist()
    for k, v in zip(keys, values, strict=True):
        latest[k] = None if v is None else json.loads(v)
    return {k: v for k, v in latest.items() if v is not None}


def test_a_regular_join_of_streams_keeps_its_state_for_the_ttl(tmp_path: Path) -> None:
    """Flink's join of two streams without time bounds matches whatever their times (within
    `table.exec.state.ttl`, 24 hours by default); `a.*` names a's columns as they are."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            BIDS + "CREATE TABLE pairs (id BIGINT, cat BIGINT, opens TIMESTAMP(3), "
            "closes TIMESTAMP(3), price BIGINT) WITH ('connector' = 'blackhole');"
            "INSERT INTO pairs SELECT I.*, O.price FROM items AS I JOIN offers AS O "
            "ON I.id = O.item;"
        )
        _fill(engine)
        engine.drain()
        got = sorted((_bigint(k), v["PRICE"]) for k, v in _keyed_rows(engine, "PAIRS"))
        assert got == [(1, 7), (1, 9), (2, 4), (2, 6), (3, 8)]
        # the join key, ID, is the records' key (a KAFKA BIGINT); the rest their value
        assert set(_rows(engine, "PAIRS")[0]) == {"CAT", "OPENS", "CLOSES", "PRICE"}
        engine.execute("SET 'table.exec.state.ttl' = '1 s';")
        engine.execute(
            "CREATE TABLE near (id BIGINT, price BIGINT) WITH ('connector' = 'blackhole');"
            "INSERT INTO near SELECT I.id, O.price FROM items AS I JOIN offers AS O "
            "ON I.id = O.item;"
        )
        engine.drain()
        # only the offers within a second of their item's time
        near = sorted((_bigint(k), v["PRICE"]) for k, v in _keyed_rows(engine, "NEAR"))
        assert near == [(1, 7), (2, 4), (3, 8)]
        engine.execute("SET 'table.exec.state.ttl' = '0';")
        with pytest.raises(SqlError, match="positive duration"):
            engine.execute(
                "CREATE TABLE never (id BIGINT) WITH ('connector' = 'blackhole');"
                "INSERT INTO never SELECT I.id FROM items AS I JOIN offers AS O ON I.id = O.item;"
            )


def test_top_n_and_aggregation_over_a_join_bounded_by_a_column(tmp_path: Path) -> None:
    """The best offer made while its item was open (a bound on a column that is no record
    time: a regular join and a filter), then the average best per category (an aggregation
    over an aggregating subquery)."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            BIDS + "CREATE TABLE best (id BIGINT, price BIGINT) WITH ('connector' = 'print');"
            "INSERT INTO best SELECT id, price FROM (SELECT I.id, O.price, ROW_NUMBER() OVER "
            "(PARTITION BY I.id ORDER BY O.price DESC) AS rownum FROM items I, offers O "
            "WHERE I.id = O.item AND O.`at` BETWEEN I.opens AND I.closes) WHERE rownum <= 1;"
            "CREATE TABLE per_cat (cat BIGINT, avg_best DOUBLE) WITH ('connector' = 'print');"
            "INSERT INTO per_cat SELECT Q.cat, AVG(Q.final) FROM (SELECT MAX(O.price) AS final, "
            "I.cat FROM items I, offers O WHERE I.id = O.item AND O.`at` BETWEEN I.opens AND "
            "I.closes GROUP BY I.id, I.cat) Q GROUP BY Q.cat;"
        )
        _fill(engine)
        engine.drain()
        best = sorted((v["PRICE"]) for v in _final_rows(engine, "BEST").values())
        assert best == [6, 7]  # item 1's 7 (9 came after it closed), item 2's 6
        per_cat = {json.loads(k): v["AVG_BEST"] for k, v in _final_rows(engine, "PER_CAT").items()}
        assert per_cat == {10: 6.5}


def test_partitioned_by_is_accepted() -> None:
    stmt = parse_one(
        "CREATE TABLE files (a BIGINT, dt VARCHAR) PARTITIONED BY (dt) "
        "WITH ('connector' = 'filesystem', 'path' = '/tmp/x', 'format' = 'csv')"
    )
    assert isinstance(stmt, FlinkTable)
    assert stmt.partitioned_by == ("DT",)
    with pytest.raises(SqlError, match="no column of FILES"):
        parse_one("CREATE TABLE files (a BIGINT) PARTITIONED BY (b) WITH ('connector' = 'print')")


def test_proctime_outside_a_view_read_by_a_window_is_refused_at_its_place(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            ORDERS + "CREATE TABLE rates (id BIGINT, rate INT, PRIMARY KEY (id) NOT ENFORCED) "
            "WITH ('connector' = 'upsert-kafka', 'topic' = 'rates', 'value.format' = 'json', "
            "'partitions' = '1');"
            "CREATE TABLE priced (id BIGINT, rate INT) WITH ('connector' = 'blackhole');"
        )
        # joined FOR SYSTEM_TIME AS OF its processing time, it is a lookup join (below); a
        # plain join of it makes the subquery a query of its own, where PROCTIME() has no use
        with pytest.raises(SqlError, match="PROCTIME\\(\\) is Flink's processing-time") as e:
            engine.execute(
                "INSERT INTO priced SELECT O.id, R.rate FROM (SELECT *,\n"
                "    PROCTIME() AS p FROM orders) O JOIN rates AS R ON O.id = R.id;"
            )
        assert (e.value.line, e.value.column) == (2, 5)
