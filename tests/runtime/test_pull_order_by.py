"""ORDER BY ... [ASC | DESC] [NULLS FIRST | LAST] [LIMIT n] in pull queries over tables
(confluentinc/ksql#4750), checked against DuckDB over the table's rows after updates and
deletes; and its refusals (push and persistent queries, streams, the rows bound)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError

ROWS_BOUND = 50


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        tmp_path / "data",
        fsync="never",
        properties={"ksql.streams.cache.max.bytes.buffering": "0", "pull.max.rows": ROWS_BOUND},
    )
    e.execute(
        "CREATE TABLE t (id STRING PRIMARY KEY, region STRING, x INT, y DOUBLE) WITH "
        "(kafka_topic='t', value_format='JSON', partitions=2);"
        "CREATE TABLE tq AS SELECT * FROM t;"
    )
    yield e
    e.close()


def _fill(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """Upserts with NULLs and ties, then deletes; the rows the table holds after them."""
    rnd = random.Random(11)
    rows: dict[str, tuple[Any, ...]] = {}
    for _ in range(150):
        key = f"k{rnd.randrange(40)}"
        row = (
            rnd.choice(["north", "south", "east", None]),
            rnd.choice([None, *range(8)]),
            rnd.choice([None, 0.5, 1.5, 2.5]),
        )
        rows[key] = row
        engine.insert("t", {"ID": key, "REGION": row[0], "X": row[1], "Y": row[2]})
    for key in sorted(rows)[::5]:
        engine.execute(f"DELETE FROM t WHERE id = '{key}';")
        del rows[key]
    engine.drain()
    return rows


def _duck(rows: dict[str, tuple[Any, ...]], query: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("SET default_null_order = 'nulls_last'")  # hispeed's documented default
    con.execute("CREATE TABLE tq (id VARCHAR, region VARCHAR, x INTEGER, y DOUBLE)")
    con.executemany("INSERT INTO tq VALUES (?, ?, ?, ?)", [(k, *v) for k, v in rows.items()])
    return con.execute(query).fetchall()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, x FROM tq ORDER BY x DESC, id LIMIT 7",
        "SELECT id, x FROM tq ORDER BY x, id LIMIT 7",
        "SELECT id, x FROM tq ORDER BY x DESC NULLS FIRST, id DESC LIMIT 9",
        "SELECT id, region, y FROM tq WHERE x >= 3 ORDER BY region NULLS FIRST, y DESC, id",
        "SELECT id, x * 2 + y AS score FROM tq ORDER BY score DESC, id LIMIT 5",
        "SELECT id, region FROM tq ORDER BY 2 DESC, 1 LIMIT 6",
        "SELECT id FROM tq WHERE region = 'north' ORDER BY tq.y NULLS FIRST, x, id",
        # a subquery without an alias: ORDER BY after it is no alias (docs/sql.md's example)
        "SELECT id, score FROM (SELECT id, x * 2 AS score FROM tq) ORDER BY score DESC, id LIMIT 4",
    ],
)
def test_order_by_matches_duckdb_after_updates_and_deletes(engine: Engine, query: str) -> None:
    rows = _fill(engine)
    got = [tuple(r.values()) for r in engine.query(query + ";")]
    want = _duck(rows, query)
    assert got == want
    assert len(want) > 1  # the order is shown by more than one row


def test_order_by_follows_the_table_as_it_changes(engine: Engine) -> None:
    for key, x in [("a", 3), ("b", 9), ("c", 5)]:
        engine.insert("t", {"ID": key, "X": x})
    engine.drain()
    top = "SELECT id FROM tq ORDER BY x DESC LIMIT 2;"
    assert [r["ID"] for r in engine.query(top)] == ["b", "c"]
    engine.execute("DELETE FROM t WHERE id = 'b';")
    engine.insert("t", {"ID": "a", "X": 7})
    engine.drain()
    assert [r["ID"] for r in engine.query(top)] == ["a", "c"]


def test_ties_keep_the_order_of_the_other_keys_and_limit_cuts_after_sorting(
    engine: Engine,
) -> None:
    for i in range(20):
        engine.insert("t", {"ID": f"k{i:02d}", "X": i % 3})
    engine.drain()
    rows = engine.query("SELECT id, x FROM tq ORDER BY x DESC LIMIT 8;")
    assert [r["X"] for r in rows] == [2] * 6 + [1] * 2


def test_without_limit_the_answer_is_bounded_by_the_setting(engine: Engine) -> None:
    for i in range(ROWS_BOUND + 1):
        engine.insert("t", {"ID": f"k{i}", "X": i})
    engine.drain()
    with pytest.raises(HispeedError, match=r"at most 50 rows .*pull\.max\.rows.*add a LIMIT"):
        engine.query("SELECT * FROM tq ORDER BY x;")
    assert len(engine.query("SELECT * FROM tq ORDER BY x LIMIT 50;")) == ROWS_BOUND
    with pytest.raises(SqlError, match="LIMIT 51 with ORDER BY is past") as info:
        engine.query("SELECT * FROM tq ORDER BY x LIMIT 51;")
    assert (info.value.line, info.value.column) == (1, 27)


def test_order_by_is_refused_outside_pull_queries_over_tables(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM s (id STRING KEY, x INT) WITH (kafka_topic='s', value_format='JSON', "
        "partitions=1);"
    )
    with pytest.raises(SqlError, match="push query's rows") as info:
        engine.stream("SELECT * FROM s ORDER BY x EMIT CHANGES;")
    assert (info.value.line, info.value.column) == (1, 26)
    with pytest.raises(SqlError, match=r"persistent query \(CREATE TABLE") as info:
        engine.execute("CREATE TABLE z AS SELECT * FROM t ORDER BY x;")
    assert (info.value.line, info.value.column) == (1, 44)
    with pytest.raises(SqlError, match="over the stream S") as info:
        engine.query("SELECT * FROM s ORDER BY x LIMIT 2;")
    assert (info.value.line, info.value.column) == (1, 26)
    with pytest.raises(SqlError, match="cannot sort") as info:
        engine.query("SELECT * FROM tq ORDER BY ARRAY[x];")
    with pytest.raises(SqlError, match="EXPLAIN shows the plan of a query that runs on") as info:
        engine.execute("EXPLAIN SELECT * FROM tq ORDER BY x LIMIT 1;")
    assert (info.value.line, info.value.column) == (1, 35)
    with pytest.raises(SqlError, match="select list has 4 columns") as info:
        engine.query("SELECT * FROM tq ORDER BY 5;")
    assert (info.value.line, info.value.column) == (1, 27)
