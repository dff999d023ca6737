"""Top-N orders a DOUBLE NaN as Java's Double.compare does (Flink's Top-N, ksqlDB, DuckDB):
the greatest number, equal to itself; and keep-last deduplication (`ORDER BY <time> DESC`,
rn = 1) lets a later row at the kept row's time replace it, as Flink's does. Both checked
against DuckDB's ROW_NUMBER over the same rows, the arrival breaking ties."""

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


def _feed(engine: Engine, rows: list[dict[str, Any]], per_batch: int) -> None:
    for at in range(0, len(rows), per_batch):
        for row in rows[at : at + per_batch]:
            engine.insert("s", row)
        engine.drain()


def _same(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    """Equal rows, NaN equal to NaN."""

    def norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return sorted(
            (
                tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in r)
                for r in rows
            ),
            key=repr,
        )

    assert norm(got) == norm(expected)


def _duckdb(rows: list[tuple[Any, ...]], columns: str, query: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE s ({columns})")
    con.executemany(f"INSERT INTO s VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return [tuple(r) for r in con.execute(query).fetchall()]


VALUES = [
    [1.0, NAN, 5.0, 3.0, 4.0],
    [5.0, NAN, 1.0, 10.0],
    [NAN, 1.0, 5.0, NAN, None, 7.0],
    [1.0, 5.0, NAN, 10.0, 7.0, None, -math.inf],
]


@pytest.mark.parametrize("values", VALUES)
@pytest.mark.parametrize("direction", ["DESC", "ASC"])
@pytest.mark.parametrize("kind", ["STREAM", "TABLE"])
@pytest.mark.parametrize("per_batch", [1, 100])
def test_nan_is_the_greatest_double_in_top_n(
    engine: Engine, values: list[float | None], direction: str, kind: str, per_batch: int
) -> None:
    key = "k STRING PRIMARY KEY" if kind == "TABLE" else "k STRING KEY"
    engine.execute(
        f"CREATE {kind} s ({key}, g STRING, v DOUBLE) WITH (kafka_topic='s', "
        "value_format='JSON', partitions=1);"
        "CREATE TABLE top WITH (key_format='JSON') AS SELECT g, rn, k, v FROM "
        "(SELECT *, ROW_NUMBER() OVER "
        f"(PARTITION BY g ORDER BY v {direction}) AS rn FROM s) WHERE rn <= 3;"
    )
    rows = [{"K": f"k{i}", "G": "g", "V": v} for i, v in enumerate(values)]
    _feed(engine, rows, per_batch)
    got = [(r["G"], r["RN"], r["K"], r["V"]) for r in engine.query("SELECT * FROM top;")]
    expected = _duckdb(
        [(r["K"], r["G"], r["V"], i) for i, r in enumerate(rows)],
        "k VARCHAR, g VARCHAR, v DOUBLE, arrival INTEGER",
        "SELECT g, rn, k, v FROM (SELECT *, row_number() OVER (PARTITION BY g ORDER BY "
        f"v {direction} NULLS LAST, arrival) AS rn FROM s) WHERE rn <= 3",
    )
    _same(got, expected)


@pytest.mark.parametrize("per_batch", [1, 2, 100])
def test_keep_last_deduplication_keeps_the_later_of_rows_at_one_time(
    engine: Engine, per_batch: int
) -> None:
    engine.execute(
        "CREATE STREAM s (k STRING KEY, dev STRING, temp INT, ts BIGINT) WITH "
        "(kafka_topic='s', value_format='JSON', partitions=1, timestamp='ts');"
        "CREATE TABLE latest AS SELECT dev, temp, ts FROM (SELECT *, ROW_NUMBER() OVER "
        "(PARTITION BY dev ORDER BY ts DESC) AS rn FROM s) WHERE rn = 1;"
        "CREATE TABLE first_ AS SELECT dev, temp, ts FROM (SELECT *, ROW_NUMBER() OVER "
        "(PARTITION BY dev ORDER BY ts ASC) AS rn FROM s) WHERE rn = 1;"
    )
    readings = [
        ("d1", 20, 1000), ("d1", 25, 2000), ("d2", 7, 1500), ("d1", 30, 2000),
        ("d2", 8, 1500), ("d1", 31, 1900), ("d2", 9, 1400), ("d1", 32, 2000), ("d2", 6, 1000),
    ]  # fmt: skip
    rows = [{"K": d, "DEV": d, "TEMP": t, "TS": ts} for d, t, ts in readings]
    _feed(engine, rows, per_batch)
    table = [(d, t, ts, i) for i, (d, t, ts) in enumerate(readings)]
    columns = "dev VARCHAR, temp INTEGER, ts BIGINT, arrival INTEGER"
    # Flink: keep-last replaces the kept row on a row at the same time or later; keep-first
    # keeps the first row of the earliest time
    last = _duckdb(
        table,
        columns,
        "SELECT dev, temp, ts FROM (SELECT *, row_number() OVER (PARTITION BY dev "
        "ORDER BY ts DESC, arrival DESC) AS rn FROM s) WHERE rn = 1",
    )
    first = _duckdb(
        table,
        columns,
        "SELECT dev, temp, ts FROM (SELECT *, row_number() OVER (PARTITION BY dev "
        "ORDER BY ts, arrival) AS rn FROM s) WHERE rn = 1",
    )
    assert sorted(tuple(r.values()) for r in engine.query("SELECT * FROM latest;")) == sorted(last)
    assert sorted(tuple(r.values()) for r in engine.query("SELECT * FROM first_;")) == sorted(first)
