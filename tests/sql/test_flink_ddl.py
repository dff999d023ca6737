"""Flink SQL's DDL: what parses into what, what is refused (with the line and column), and
what each statement makes on an engine (docs/sql.md, "Flink SQL's DDL")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError
from hispeed.sql import types as T
from hispeed.sql.flink import FlinkTable, FlinkView
from hispeed.sql.parser import parse_one

KAFKA_TABLE = """CREATE TABLE rates (
  currency VARCHAR(3),
  rate DECIMAL(10, 4) NOT NULL,
  `updateTime` TIMESTAMP(3),
  PRIMARY KEY (currency) NOT ENFORCED,
  WATERMARK FOR `updateTime` AS `updateTime` - INTERVAL '5' SECOND
) WITH ('connector' = 'upsert-kafka', 'topic' = 'rates', 'key.format' = 'json',
  'value.format' = 'json')"""


def test_table_parses_columns_key_watermark_and_options() -> None:
    stmt = parse_one(KAFKA_TABLE)
    assert isinstance(stmt, FlinkTable)
    assert [(c.name, c.type) for c in stmt.columns] == [
        ("CURRENCY", T.STRING),
        ("RATE", T.decimal(10, 4)),
        ("UPDATETIME", T.TIMESTAMP),
    ]
    assert stmt.primary_key == ("CURRENCY",)
    assert stmt.watermark == ("UPDATETIME", 5000)
    assert stmt.connector == "upsert-kafka"
    assert stmt.options["key.format"] == "json"


def test_row_types_computed_columns_and_views() -> None:
    stmt = parse_one(
        "CREATE TEMPORARY TABLE t (kind INT, b ROW<x BIGINT, `when` TIMESTAMP_LTZ(3)>, "
        "`when` AS b.`when`, WATERMARK FOR `when` AS `when`) WITH ('connector' = 'datagen')"
    )
    assert isinstance(stmt, FlinkTable)
    assert stmt.temporary
    assert stmt.columns[1].type == T.struct([("X", T.BIGINT), ("WHEN", T.TIMESTAMP)])
    assert stmt.columns[2].type is None
    assert stmt.columns[2].expr is not None
    assert stmt.watermark == ("WHEN", 0)
    view = parse_one("CREATE VIEW v AS SELECT MOD(a, 3) AS m, `dateTime` FROM s")
    assert isinstance(view, FlinkView)
    # Flink's MOD is hispeed's %, a back-quoted name is upper-cased as a bare one
    assert "BinaryOp(op='%'" in repr(view.query.items[0])
    assert "name='DATETIME'" in repr(view.query.items[1])


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        # an enforced key: Flink refuses it too
        (
            "CREATE TABLE t (a INT, PRIMARY KEY (a)) WITH ('connector' = 'kafka')",
            (1, 39),
            "NOT ENFORCED",
        ),
        ("CREATE TABLE t (a INT) WITH ('connector' = 'jdbc')", (1, 1), "'jdbc' is not supported"),
        (
            "CREATE TABLE t (a INT,\n  WATERMARK FOR b AS b) WITH ('connector' = 'kafka')",
            (1, 1),
            "no column of T",
        ),
        (
            "CREATE TABLE t (a TIMESTAMP(3),\n  WATERMARK FOR a AS a + INTERVAL '1' SECOND)\n"
            "  WITH ('connector' = 'kafka')",
            (2, 24),
            "expected ',' or ')'",
        ),
        ("CREATE TABLE t (a INT METADATA) WITH ('connector' = 'kafka')", (1, 23), "METADATA"),
        ("CREATE TABLE t (a INT) WITH ('connector' = 'kafka') LIKE u", (1, 53), "LIKE"),
        ("CREATE VIEW v (a) AS SELECT a FROM s", (1, 15), "column list"),
        (
            "CREATE TABLE t (a INT, PRIMARY KEY (b) NOT ENFORCED) WITH ('connector' = 'print')",
            (1, 1),
            "no column of T",
        ),
    ],
)
def test_refused_with_line_and_column(text: str, where: tuple[int, int], words: str) -> None:
    with pytest.raises(SqlError) as info:
        parse_one(text)
    assert (info.value.line, info.value.column) == where
    assert words in str(info.value)


def test_ksqldb_statements_stay_ksqldb() -> None:
    # a ksqlDB CREATE TABLE has no Flink sign: still ksqlDB's statement
    stmt = parse_one("CREATE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', format='JSON')")
    assert type(stmt).__name__ == "CreateSource"


def test_kafka_tables_views_sinks_and_replay(tmp_path: Path) -> None:
    """A 'kafka' table is a stream over its topic; a view a persistent query; an INSERT INTO
    a 'print' sink makes it, named by position; all of it is there again after a restart."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE TABLE orders (id BIGINT, amount INT, `ts` TIMESTAMP(3), "
            "WATERMARK FOR `ts` AS `ts` - INTERVAL '1' SECOND) WITH ('connector' = 'kafka', "
            "'topic' = 'orders', 'format' = 'json', 'partitions' = '1');"
            "CREATE VIEW big AS SELECT id, amount FROM orders WHERE amount > 10;"
            "CREATE TABLE out_sink (order_id BIGINT, doubled INT) WITH ('connector' = 'print');"
            "INSERT INTO out_sink SELECT id, amount * 2 FROM big;"
        )
        for i, amount in enumerate([5, 20, 30]):
            engine.execute(
                f"INSERT INTO orders (id, amount, ts) VALUES ({i}, {amount}, FROM_UNIXTIME({i}));"
            )
        engine.drain()
        assert engine.catalog.sources["ORDERS"].timestamp == "TS"
        rows = [
            json.loads(v) for v in engine.log.read_table("OUT_SINK", 0).column("value").to_pylist()
        ]
        assert rows == [{"ORDER_ID": 1, "DOUBLED": 40}, {"ORDER_ID": 2, "DOUBLED": 60}]
        with pytest.raises(SqlError, match="query has 1 columns, the sink 2"):
            engine.execute("INSERT INTO out_sink SELECT id FROM orders;")
    with Engine(tmp_path / "data") as engine:
        assert {"ORDERS", "BIG", "OUT_SINK"} <= set(engine.catalog.sources)
        engine.execute("INSERT INTO orders (id, amount, ts) VALUES (3, 50, FROM_UNIXTIME(3));")
        engine.drain()
        rows = engine.log.read_table("OUT_SINK", 0).column("value").to_pylist()
        assert json.loads(rows[-1]) == {"ORDER_ID": 3, "DOUBLED": 100}


def test_nexmark_view_must_pick_one_kind(tmp_path: Path) -> None:
    ddl = (Path(__file__).parents[2] / "examples" / "nexmark" / "flink" / "ddl.sql").read_text()
    table = ddl[: ddl.index("CREATE VIEW")]
    with Engine(tmp_path / "data") as engine:
        engine.execute(table)
        with pytest.raises(SqlError, match="selects one kind of event"):
            engine.execute("CREATE VIEW x AS SELECT bid.price FROM nexmark WHERE event_type > 1;")
        with pytest.raises(SqlError, match="reads BID's fields") as info:
            engine.execute(
                "CREATE VIEW x AS SELECT\n  person.id FROM nexmark WHERE event_type = 2;"
            )
        assert (info.value.line, info.value.column) == (2, 3)
        with pytest.raises(HispeedError, match="cannot be inserted into"):
            engine.execute("INSERT INTO nexmark SELECT * FROM nexmark;")


def test_names_in_use_are_refused(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute("CREATE TABLE s (a INT) WITH ('connector' = 'blackhole');")
        with pytest.raises(HispeedError, match="a Flink table of that name is declared"):
            engine.execute("CREATE VIEW s AS SELECT a FROM s;")
        result = engine.execute(
            "CREATE TABLE IF NOT EXISTS s (a INT) WITH ('connector' = 'print');"
        )
        assert "already exists" in str(result[0].message)


def test_group_windows_are_ksqldb_windows() -> None:
    view = parse_one(
        "CREATE VIEW v AS SELECT k, COUNT(*) AS n, HOP_START(t, INTERVAL '1' SECOND, "
        "INTERVAL '5' SECOND) AS s, HOP_END(t, INTERVAL '1' SECOND, INTERVAL '5' SECOND) AS e "
        "FROM src GROUP BY HOP(t, INTERVAL '1' SECOND, INTERVAL '5' SECOND), k"
    )
    assert isinstance(view, FlinkView)
    query = view.query
    assert query.window is not None
    assert (query.window.kind, query.window.size_ms, query.window.advance_ms) == (
        "HOPPING",
        5000,
        1000,
    )
    assert [type(g).__name__ for g in query.group_by] == ["ColumnRef"]
    assert "name='WINDOWSTART'" in repr(query.items[2])
    assert "name='WINDOWEND'" in repr(query.items[3])
    with pytest.raises(SqlError, match=r"TUMBLE\(time_col, INTERVAL ...\)") as info:
        parse_one("CREATE VIEW v AS SELECT k FROM src\nGROUP BY k, TUMBLE(t)")
    assert (info.value.line, info.value.column) == (2, 13)


def test_drop_of_a_declared_sink_and_of_a_made_one(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE TABLE s (a INT) WITH ('connector' = 'blackhole');"
            "CREATE STREAM src (a INT) WITH (kafka_topic='src', value_format='JSON', "
            "partitions=1);"
        )
        engine.execute("DROP TABLE s;")
        # declared again, with other columns; made by its INSERT INTO, then dropped too
        engine.execute("CREATE TABLE s (b INT) WITH ('connector' = 'print');")
        engine.execute("INSERT INTO s SELECT a FROM src;")
        assert [c.name for c in engine.catalog.sources["S"].value_columns] == ["B"]
        engine.execute("DROP STREAM s;")
        assert "S" not in engine.catalog.sources
        assert "S" not in engine.catalog.flink
    with Engine(tmp_path / "data") as engine:  # the same after a restart
        assert "S" not in engine.catalog.sources
        assert "S" not in engine.catalog.flink
