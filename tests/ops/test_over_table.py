"""Aggregates OVER frames of a table's rows: the result is a table keyed as the input, kept
equal to DuckDB's window aggregates over the input table's current rows as rows are inserted,
updated (moved), deleted (tombstones) or stop matching WHERE, across a restart; the changelog
is decoded with `json`, not hispeed."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine

TABLE = (
    "CREATE TABLE items (id STRING PRIMARY KEY, cat STRING, t BIGINT, price BIGINT) WITH "
    "(kafka_topic='items', partitions=1, value_format='JSON');"
)
QUERY = (
    "CREATE TABLE o AS SELECT id, cat, "
    "AVG(price) OVER (PARTITION BY cat ORDER BY t ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) "
    "AS a, SUM(price) OVER (PARTITION BY cat ORDER BY t RANGE BETWEEN INTERVAL '20' "
    "MILLISECONDS PRECEDING AND CURRENT ROW) AS s, COUNT(*) OVER (PARTITION BY cat ORDER BY t) "
    "AS n FROM items WHERE price > 0 EMIT CHANGES;"
)


def _final(engine: Engine) -> dict[str, dict[str, Any]]:
    """The table the changelog leaves: each key's last value, tombstones deleting."""
    latest: dict[str, dict[str, Any] | None] = {}
    for r in engine.log.read_table("O", 0).to_pylist():
        latest[r["key"].decode()] = None if r["value"] is None else json.loads(r["value"])
    return {k: v for k, v in latest.items() if v is not None}


def test_over_a_table_follows_duckdb_as_rows_move_and_leave(tmp_path: Path) -> None:
    rng = random.Random(8)
    state: dict[str, tuple[str, int, int]] = {}
    times = rng.sample(range(10_000), 2_000)  # no two rows at one time: no ties

    def put(engine: Engine, key: str, value: tuple[str, int, int] | None) -> None:
        if value is None:
            state.pop(key, None)
            engine.log.append("items", [(key.encode(), None)])
        else:
            state[key] = value
            body = {"CAT": value[0], "T": value[1], "PRICE": value[2]}
            engine.log.append("items", [(key.encode(), json.dumps(body).encode())])

    def churn(engine: Engine, count: int) -> None:
        for i in range(count):
            key = f"i{rng.randrange(40)}"
            gone = rng.random() < 0.2
            put(
                engine,
                key,
                None if gone else (f"c{rng.randrange(3)}", times.pop(), rng.randrange(-9, 99)),
            )
            if i % 7 == 0:
                engine.drain()
        engine.drain()

    with Engine(tmp_path / "data") as engine:
        engine.execute(TABLE)
        engine.execute(QUERY)
        churn(engine, 100)
    with Engine(tmp_path / "data") as engine:  # the rows come back from the changelog
        churn(engine, 100)
        got = _final(engine)
    items = duckdb.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"('{k}', '{c}', {t}, {p})" for k, (c, t, p) in state.items())
        + ") as t(id, cat, t, price)"
    )
    expected = duckdb.sql(
        "select id, cat, avg(price) over (w rows between 2 preceding and current row), "
        "sum(price) over (w range between 20 preceding and current row), count(*) over w "
        "from items where price > 0 window w as (partition by cat order by t)"
    ).fetchall()
    assert len(expected) > 15
    assert set(got) == {r[0] for r in expected}
    for key, cat, avg, total, count in expected:
        row = got[key]
        assert (row["CAT"], row["S"], row["N"]) == (cat, total, count), key
        assert row["A"] == pytest.approx(avg), key
