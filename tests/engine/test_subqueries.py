"""Subqueries in FROM (confluentinc/ksql#745): a subquery that filters and projects, under a
query that filters, projects or aggregates, and an aggregating subquery under a filter,
each checked against DuckDB running the same SQL over the same rows, over a stream and over
a table whose updates and deletes retract rows."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        tmp_path / "data", fsync="never", properties={"ksql.streams.cache.max.bytes.buffering": "0"}
    )
    e.execute(
        "CREATE STREAM s (id STRING KEY, k STRING, x INT) WITH (kafka_topic='s', "
        "value_format='JSON', partitions=2);"
        "CREATE TABLE t (id STRING PRIMARY KEY, region STRING, x INT) WITH (kafka_topic='t', "
        "value_format='JSON', partitions=2);"
    )
    yield e
    e.close()


def _duck(table: str, columns: str, rows: list[tuple[Any, ...]], query: str) -> list[Any]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE {table} ({columns})")
    con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return sorted(con.execute(query).fetchall())


def _stream_rows(engine: Engine) -> list[tuple[Any, ...]]:
    rnd = random.Random(5)
    rows = [(f"i{i}", rnd.choice("abc"), rnd.randint(-3, 12)) for i in range(80)]
    for row in rows:
        engine.insert("s", {"ID": row[0], "K": row[1], "X": row[2]})
    engine.drain()
    return rows


def _printed(engine: Engine, topic: str, n: int) -> list[dict[str, Any]]:
    rows = engine.execute(f"PRINT '{topic}' FROM BEGINNING LIMIT {n};")[0].rows
    return [{"KEY": r["key"].decode(), **json.loads(r["value"])} for r in rows]


def test_an_aggregation_over_a_filtering_subquery_matches_duckdb(engine: Engine) -> None:
    query = (
        "SELECT k, COUNT(*) AS n, SUM(y) AS total FROM (SELECT k, x * 2 AS y FROM s "
        "WHERE x > 3) sub WHERE y < 20 GROUP BY k"
    )
    engine.execute(f"CREATE TABLE agg AS {query};")
    rows = _stream_rows(engine)
    got = sorted(tuple(r.values()) for r in engine.query("SELECT k, n, total FROM agg;"))
    assert got == _duck("s", "id VARCHAR, k VARCHAR, x INTEGER", rows, query)
    assert len(got) == 3


def test_nested_projecting_subqueries_match_duckdb(engine: Engine) -> None:
    query = (
        "SELECT * FROM (SELECT id, k, x + 1 AS x1 FROM (SELECT * FROM s WHERE x > 1) "
        "WHERE x < 9) q WHERE x1 > 4"
    )
    engine.execute(f"CREATE STREAM out AS {query};")
    rows = _stream_rows(engine)
    want = _duck("s", "id VARCHAR, k VARCHAR, x INTEGER", rows, query)
    got = sorted((r["KEY"], r["K"], r["X1"]) for r in _printed(engine, "OUT", len(want)))
    assert got == want


def test_an_aggregation_over_a_subquery_of_a_table_retracts_rows(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE per_region AS SELECT region, COUNT(*) AS n, SUM(x) AS total FROM "
        "(SELECT region, x FROM t WHERE x > 10) GROUP BY region;"
    )
    rnd = random.Random(3)
    state: dict[str, tuple[str, int]] = {}
    for step in range(100):
        key = f"k{rnd.randrange(15)}"
        if step % 7 == 6:
            engine.execute(f"DELETE FROM t WHERE id = '{key}';")
            state.pop(key, None)
        else:
            row = (rnd.choice(["north", "south"]), rnd.randint(0, 20))
            engine.insert("t", {"ID": key, "REGION": row[0], "X": row[1]})
            state[key] = row
    engine.drain()
    rows = [(k, *v) for k, v in state.items()]
    want = _duck(
        "t",
        "id VARCHAR, region VARCHAR, x INTEGER",
        rows,
        "SELECT region, COUNT(*), SUM(x) FROM (SELECT region, x FROM t WHERE x > 10) "
        "GROUP BY region",
    )
    got = sorted(
        tuple(r.values()) for r in engine.query("SELECT region, n, total FROM per_region;")
    )
    # ksqlDB's table aggregation keeps a group whose rows all left (COUNT 0)
    assert [g for g in got if g[1] > 0] == want


def test_a_filter_over_an_aggregating_subquery_is_having_and_retracts(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE busy AS SELECT * FROM (SELECT k, COUNT(*) AS n FROM s GROUP BY k) "
        "WHERE n > 1;"
    )
    engine.execute(
        "CREATE TABLE dear AS SELECT * FROM (SELECT region, SUM(x) AS total FROM t "
        "GROUP BY region) WHERE total >= 10;"
    )
    rows = _stream_rows(engine)
    want = _duck(
        "s",
        "id VARCHAR, k VARCHAR, x INTEGER",
        rows,
        "SELECT * FROM (SELECT k, COUNT(*) AS n FROM s GROUP BY k) WHERE n > 1",
    )
    assert sorted(tuple(r.values()) for r in engine.query("SELECT k, n FROM busy;")) == want
    engine.insert("t", {"ID": "a", "REGION": "north", "X": 12})
    engine.drain()
    assert engine.query("SELECT * FROM dear;") == [{"REGION": "north", "TOTAL": 12}]
    engine.insert("t", {"ID": "a", "REGION": "north", "X": 4})  # the group leaves the filter
    engine.drain()
    assert engine.query("SELECT * FROM dear;") == []


def test_a_push_query_and_a_pull_query_read_a_subquery(engine: Engine) -> None:
    engine.execute("CREATE TABLE tq AS SELECT * FROM t;")
    for key, x in [("a", 3), ("b", 15), ("c", 30)]:
        engine.insert("t", {"ID": key, "REGION": "r", "X": x})
    engine.drain()
    pulled = engine.query(
        "SELECT id, big FROM (SELECT id, x * 10 AS big FROM tq WHERE x > 5) WHERE big < 200 "
        "ORDER BY big DESC;"
    )
    assert pulled == [{"ID": "b", "BIG": 150}]
    with engine.stream(
        "SELECT id, twice FROM (SELECT id, x * 2 AS twice FROM s) WHERE twice > 10 EMIT CHANGES;"
    ) as q:
        engine.insert("s", {"ID": "z", "K": "a", "X": 2})
        engine.insert("s", {"ID": "y", "K": "a", "X": 9})
        rows = q.poll(5.0)
    assert rows == [{"ID": "y", "TWICE": 18}]


@pytest.mark.parametrize(
    ("statement", "column", "says"),
    [
        (
            "SELECT * FROM (SELECT k, COUNT(*) AS n FROM s GROUP BY k) GROUP BY n EMIT CHANGES;",
            68,
            "aggregation over an aggregating subquery",
        ),
        (
            "SELECT * FROM (SELECT EXPLODE(ARRAY[x]) AS v FROM s) EMIT CHANGES;",
            23,
            "table function EXPLODE",
        ),
        ("SELECT nope FROM (SELECT k FROM s) q EMIT CHANGES;", 8, "NOPE is not a column"),
        ("SELECT q2.k FROM (SELECT k FROM s) q EMIT CHANGES;", 8, "'Q2' is not the subquery"),
        ("SELECT * FROM (SELECT k FROM s LIMIT 3) EMIT CHANGES;", 16, "LIMIT in a subquery"),
    ],
)
def test_subqueries_that_cannot_be_merged_are_refused_at_their_place(
    engine: Engine, statement: str, column: int, says: str
) -> None:
    with pytest.raises(SqlError, match=says) as info:
        engine.stream(statement)
    assert (info.value.line, info.value.column) == (1, column)
