"""DOUBLE NaN has one place everywhere, as Java's Double.compare and Double.equals (ksqlDB,
Flink) and DuckDB give it: the greatest number in a sorted pull query either direction, and one
value, equal to itself, in COUNT(DISTINCT); checked against DuckDB over the same rows."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine

NAN = float("nan")
ROWS = [("a", 1.0), ("b", NAN), ("c", None), ("d", 5.0), ("e", NAN), ("f", -math.inf), ("g", 1.0)]


@pytest.fixture
def engine() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as tmp:
        e = Engine(
            Path(tmp) / "data",
            fsync="never",
            properties={"ksql.streams.cache.max.bytes.buffering": "0"},
        )
        try:
            yield e
        finally:
            e.close()


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in r) for r in rows]


def _duckdb(rows: list[tuple[Any, ...]], columns: str, query: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({columns})")
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return [tuple(r) for r in con.execute(query).fetchall()]


@pytest.mark.parametrize(
    "order", ["v", "v DESC", "v DESC NULLS FIRST", "v ASC NULLS FIRST", "v DESC, id DESC"]
)
def test_a_sorted_pull_query_puts_nan_as_the_greatest_number(engine: Engine, order: str) -> None:
    engine.execute(
        "CREATE TABLE t (id STRING PRIMARY KEY, v DOUBLE) WITH (kafka_topic='t', "
        "value_format='JSON', partitions=1);"
        "CREATE TABLE tq AS SELECT * FROM t;"
    )
    for k, v in ROWS:
        engine.insert("t", {"ID": k, "V": v})
    engine.drain()
    got = [(r["ID"], r["V"]) for r in engine.query(f"SELECT id, v FROM tq ORDER BY {order};")]
    # ties (1.0 twice, NaN twice) are not ordered by the query: compare the values' order,
    # and the rows as sets
    expected = _duckdb(ROWS, "id VARCHAR, v DOUBLE", f"SELECT id, v FROM t ORDER BY {order}")
    assert [v for _, v in _norm(got)] == [v for _, v in _norm(expected)]
    assert sorted(_norm(got), key=repr) == sorted(_norm(expected), key=repr)


@pytest.mark.parametrize("per_batch", [1, 100])
@pytest.mark.parametrize("kind", ["STREAM", "TABLE"])
def test_count_distinct_counts_nan_once(engine: Engine, kind: str, per_batch: int) -> None:
    key = "id STRING PRIMARY KEY" if kind == "TABLE" else "id STRING KEY"
    engine.execute(
        f"CREATE {kind} s ({key}, g STRING, v DOUBLE) WITH (kafka_topic='s', "
        "value_format='JSON', partitions=1);"
        "CREATE TABLE c AS SELECT g, COUNT(DISTINCT v) AS n, COUNT(*) AS rows_ FROM s GROUP BY g;"
    )
    rows = [(f"k{i}", f"g{i % 2}", v) for i, (_, v) in enumerate(ROWS * 3)]
    for at in range(0, len(rows), per_batch):
        for k, g, v in rows[at : at + per_batch]:
            engine.insert("s", {"ID": k, "G": g, "V": v})
        engine.drain()
    got = sorted(tuple(r.values()) for r in engine.query("SELECT * FROM c;"))
    expected = _duckdb(
        rows,
        "id VARCHAR, g VARCHAR, v DOUBLE",
        "SELECT g, count(DISTINCT v), count(*) FROM t GROUP BY g ORDER BY g",
    )
    assert got == sorted(expected)
    if kind == "TABLE":  # taking NaN rows back leaves the other NaN counted once
        gone = [r for r in rows if isinstance(r[2], float) and math.isnan(r[2])][:3]
        for k, _, _ in gone:
            engine.execute(f"DELETE FROM s WHERE id = '{k}';")
        engine.drain()
        left = [r for r in rows if r not in gone]
        got = sorted(tuple(r.values()) for r in engine.query("SELECT * FROM c;"))
        expected = _duckdb(
            left,
            "id VARCHAR, g VARCHAR, v DOUBLE",
            "SELECT g, count(DISTINCT v), count(*) FROM t GROUP BY g ORDER BY g",
        )
        assert got == sorted(expected)
