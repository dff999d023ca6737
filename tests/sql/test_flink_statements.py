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
