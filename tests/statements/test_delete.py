"""DELETE FROM table WHERE key = ... (confluentinc/ksql#7073) and the retractions it and
updates cause downstream: a table over the table, a filter over it (rows leaving the filter),
an aggregation over it, a stream-table join and a Top-N. Each result is checked against DuckDB
over the table's rows as the operations leave them."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.testing.server import RunningServer


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        tmp_path / "data", fsync="never", properties={"ksql.streams.cache.max.bytes.buffering": "0"}
    )
    e.execute(
        "CREATE TABLE t (id STRING PRIMARY KEY, region STRING, x INT) WITH (kafka_topic='t', "
        "value_format='JSON', partitions=2);"
        "CREATE TABLE everything AS SELECT * FROM t;"
        "CREATE TABLE big AS SELECT id, x FROM t WHERE x > 10;"
        "CREATE TABLE per_region AS SELECT region, SUM(x) AS total, COUNT(*) AS n FROM t "
        "GROUP BY region;"
        "CREATE STREAM s (id STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON', "
        "partitions=2);"
    )
    yield e
    e.close()


def _state(ops: list[tuple[str, Any]]) -> dict[str, tuple[str, int]]:
    """The table's rows after the operations, by key (the model DuckDB is given)."""
    rows: dict[str, tuple[str, int]] = {}
    for op, arg in ops:
        if op == "upsert":
            rows[arg[0]] = (arg[1], arg[2])
        else:
            for k in arg:
                rows.pop(k, None)
    return rows


def _duck(rows: dict[str, tuple[str, int]], query: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id VARCHAR, region VARCHAR, x INTEGER)")
    if rows:
        con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(k, *v) for k, v in rows.items()])
    return sorted(con.execute(query).fetchall())


def _pull(engine: Engine, query: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(r.values()) for r in engine.query(query))


def test_delete_and_updates_retract_through_tables_filters_and_aggregations(
    engine: Engine,
) -> None:
    rnd = random.Random(7)
    keys = [f"k{i}" for i in range(12)]
    ops: list[tuple[str, Any]] = []
    for step in range(120):
        if step % 5 == 4:
            chosen = rnd.sample(keys, rnd.choice([1, 2]))
            ops.append(("delete", chosen))
            if len(chosen) == 1:
                engine.execute(f"DELETE FROM t WHERE id = '{chosen[0]}';")
            else:
                listed = ", ".join(f"'{k}'" for k in chosen)
                engine.execute(f"DELETE FROM t WHERE id IN ({listed});")
        else:
            row = (rnd.choice(keys), rnd.choice(["north", "south"]), rnd.randint(0, 20))
            ops.append(("upsert", row))
            engine.insert("t", {"ID": row[0], "REGION": row[1], "X": row[2]})
    engine.drain()
    rows = _state(ops)
    assert len(rows) < len(keys)  # some keys deleted at the end: the check is not vacuous
    assert _pull(engine, "SELECT id, region, x FROM everything;") == _duck(
        rows, "SELECT id, region, x FROM t"
    )
    # a filter over a table: a row an update moved out of it, or a delete took, is gone
    assert _pull(engine, "SELECT id, x FROM big;") == _duck(
        rows, "SELECT id, x FROM t WHERE x > 10"
    )
    # ksqlDB's table aggregation keeps a group whose rows all left, with the undone values
    seen = {arg[1] for op, arg in ops if op == "upsert"}
    want = {region: (0, 0) for region in seen}
    totals = "SELECT region, SUM(x), COUNT(*) FROM t GROUP BY region"
    want.update({region: (total, n) for region, total, n in _duck(rows, totals)})
    got = {r: (t, n) for r, t, n in _pull(engine, "SELECT region, total, n FROM per_region;")}
    assert got == want


def test_delete_writes_a_tombstone_in_the_tables_key_format(engine: Engine) -> None:
    engine.insert("t", {"ID": "a", "REGION": "north", "X": 1})
    engine.execute("DELETE FROM t WHERE id = 'a';")
    printed = engine.execute("PRINT 't' FROM BEGINNING LIMIT 2;")[0].rows
    assert [(r["key"], r["value"]) for r in printed] == [
        (b"a", b'{"REGION":"north","X":1}'),
        (b"a", None),
    ]


def test_a_filtered_table_emits_a_tombstone_when_a_row_leaves_the_filter(engine: Engine) -> None:
    engine.insert("t", {"ID": "a", "REGION": "north", "X": 20})
    engine.insert("t", {"ID": "a", "REGION": "north", "X": 5})
    engine.drain()
    printed = engine.execute("PRINT 'BIG' FROM BEGINNING LIMIT 2;")[0].rows
    assert [(r["key"], r["value"]) for r in printed] == [(b"a", b'{"X":20}'), (b"a", None)]


def test_a_deleted_key_leaves_stream_table_joins(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM joined AS SELECT s.id AS id, s.v, t.x FROM s JOIN t ON s.id = t.id;"
    )
    engine.insert("t", {"ID": "a", "REGION": "north", "X": 3})
    engine.drain()
    engine.insert("s", {"ID": "a", "V": 1})
    engine.drain()
    engine.execute("DELETE FROM t WHERE id = 'a';")
    engine.drain()
    engine.insert("s", {"ID": "a", "V": 2})
    engine.drain()
    printed = engine.execute("PRINT 'JOINED' FROM BEGINNING LIMIT 1;")[0].rows
    assert [r["value"] for r in printed] == [b'{"V":1,"X":3}']
    assert engine.query("SELECT * FROM joined;") == [{"ID": "a", "V": 1, "X": 3}]


def test_a_delete_reaches_the_queries_over_a_table_whose_time_is_a_column(
    engine: Engine,
) -> None:
    # a tombstone has no value, so no time column: it must still delete (it was dropped as a
    # record "without a valid time", and every query over the table kept the row)
    engine.execute(
        "CREATE TABLE rates (cur STRING PRIMARY KEY, rate INT, ts BIGINT) WITH "
        "(kafka_topic='rates', value_format='JSON', partitions=1, timestamp='ts');"
        "CREATE TABLE rates_copy AS SELECT * FROM rates;"
        "CREATE TABLE per_rate AS SELECT rate, COUNT(*) AS n FROM rates GROUP BY rate;"
    )
    engine.insert("rates", {"CUR": "eur", "RATE": 7, "TS": 100})
    engine.insert("rates", {"CUR": "usd", "RATE": 8, "TS": 100})
    engine.drain()
    engine.execute("DELETE FROM rates WHERE cur = 'eur';")
    engine.drain()
    assert _pull(engine, "SELECT cur, rate, ts FROM rates_copy;") == [("usd", 8, 100)]
    assert _pull(engine, "SELECT rate, n FROM per_rate;") == [(7, 0), (8, 1)]


def test_a_key_named_twice_is_deleted_once(engine: Engine) -> None:
    engine.insert("t", {"ID": "a", "REGION": "north", "X": 1})
    result = engine.execute("DELETE FROM t WHERE id IN ('a', 'b', 'a', 'a');")[0]
    assert result.message == "Deleted 2 keys from T"
    printed = engine.execute("PRINT 't' FROM BEGINNING LIMIT 3;")[0].rows
    assert [(r["key"], r["value"]) for r in printed] == [
        (b"a", b'{"REGION":"north","X":1}'),
        (b"a", None),
        (b"b", None),
    ]


def test_a_deleted_key_leaves_a_top_n(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE top WITH (key_format='JSON') AS SELECT * FROM (SELECT region, id, x, "
        "ROW_NUMBER() OVER (PARTITION BY region ORDER BY x DESC) AS rn FROM t) WHERE rn <= 2;"
    )
    for k, x in [("a", 5), ("b", 9), ("c", 7)]:
        engine.insert("t", {"ID": k, "REGION": "north", "X": x})
    engine.drain()
    engine.execute("DELETE FROM t WHERE id = 'b';")
    engine.drain()
    got = sorted((r["RN"], r["ID"]) for r in engine.query("SELECT rn, id FROM top;"))
    assert got == [(1, "c"), (2, "a")]


@pytest.mark.parametrize(
    ("statement", "column", "says"),
    [
        ("DELETE FROM s WHERE id = 'a';", 13, "S is a stream"),
        ("DELETE FROM big WHERE id = 'a';", 13, "written by query CTAS_BIG_"),
        ("DELETE FROM t WHERE x = 1;", 23, "X is a value column of T"),
        ("DELETE FROM t WHERE id > 'a';", 24, "by their key"),
        ("DELETE FROM t WHERE id = 'a' OR id = 'b';", 30, "by their key"),
        ("DELETE FROM t WHERE id = NULL;", 26, "never NULL"),
        ("DELETE FROM t WHERE id = CAST(NULL AS STRING);", 26, "never NULL"),
        ("DELETE FROM t WHERE id IN ('a', NULL);", 33, "never NULL"),
        ("DELETE FROM t;", 1, "needs a WHERE clause"),
        (
            "DELETE FROM t WHERE id IN (SELECT id FROM t);",
            24,
            r"\(ID IN \(SELECT \.\.\.\)\) is not supported here",
        ),
        ("DELETE FROM nope WHERE id = 'a';", 13, "NOPE does not exist"),
        ("DELETE t WHERE id = 'a';", 8, "expected FROM"),
    ],
)
def test_delete_refusals_say_why_and_where(
    engine: Engine, statement: str, column: int, says: str
) -> None:
    with pytest.raises(SqlError, match=says) as info:
        engine.execute(statement)
    assert (info.value.line, info.value.column) == (1, column)


def _ksql(server: RunningServer, text: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/ksql",
        json={"ksql": text, "streamsProperties": {}},
        headers={"content-type": "application/vnd.ksql.v1+json"},
        timeout=10,
    )


def _pulled(server: RunningServer) -> list[list[Any]]:
    r = httpx.post(f"{server.url}/query", json={"ksql": "SELECT * FROM tq;"}, timeout=10)
    assert r.status_code == 200, r.text
    return sorted(e["row"]["columns"] for e in r.json()[1:])


def test_delete_through_the_rest_api(server: RunningServer) -> None:
    r = _ksql(
        server,
        "CREATE TABLE t (id STRING PRIMARY KEY, x INT) WITH (kafka_topic='t', "
        "value_format='JSON', partitions=1); CREATE TABLE tq AS SELECT * FROM t;"
        "INSERT INTO t (id, x) VALUES ('a', 1); INSERT INTO t (id, x) VALUES ('b', 2);",
    )
    assert r.status_code == 200, r.text
    server.wait_for(lambda: len(_pulled(server)) == 2)
    r = _ksql(server, "DELETE FROM t WHERE id = 'a';")
    assert r.status_code == 200, r.text
    assert r.json()[0]["commandStatus"]["message"] == "Deleted 1 key from T"
    server.wait_for(lambda: _pulled(server) == [["b", 2]])
    r = _ksql(server, "DELETE FROM tq WHERE id = 'b';")
    assert r.status_code == 400
    assert "line 1:13" in r.json()["message"]
    assert "CTAS_TQ_" in r.json()["message"]


@pytest.mark.slow
def test_delete_in_the_shell(server: RunningServer) -> None:
    _ksql(
        server,
        "CREATE TABLE t (id STRING PRIMARY KEY, x INT) WITH (kafka_topic='t', "
        "value_format='JSON', partitions=1); CREATE TABLE tq AS SELECT * FROM t;"
        "INSERT INTO t (id, x) VALUES ('a', 1);",
    )
    server.wait_for(lambda: len(_pulled(server)) == 1)
    done = subprocess.run(
        [sys.executable, "-m", "hispeed", "sql", "--url", server.url],
        input="DELETE FROM t WHERE id IN ('a', 'z');\nDELETE FROM t WHERE x = 1;\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Deleted 2 keys from T" in done.stdout
    assert "X is a value column of T" in done.stderr
    server.wait_for(lambda: _pulled(server) == [])


def test_delete_names_every_column_of_a_key_of_several(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE visits (u STRING PRIMARY KEY, page INT PRIMARY KEY, n INT) WITH "
        "(kafka_topic='visits', key_format='JSON', value_format='JSON', partitions=1);"
        "CREATE TABLE visits_now AS SELECT * FROM visits;"
    )
    engine.insert("visits", {"U": "a", "PAGE": 1, "N": 5})
    engine.insert("visits", {"U": "a", "PAGE": 2, "N": 6})
    with pytest.raises(SqlError, match="needs the whole key of VISITS: WHERE names no value for"):
        engine.execute("DELETE FROM visits WHERE u = 'a';")
    engine.execute("DELETE FROM visits WHERE page = 1 AND u = 'a';")
    engine.drain()
    assert engine.query("SELECT * FROM visits_now;") == [{"U": "a", "PAGE": 2, "N": 6}]
