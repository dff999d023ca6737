"""Aggregates OVER frames of a table's rows: the result is a table keyed as the input, kept
equal to DuckDB's window aggregates over the input table's current rows as rows are inserted,
updated (moved), deleted (tombstones) or stop matching WHERE, across a restart; the changelog
is decoded with `json`, not hispeed."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
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


def _run_across_restart(
    tmp_path: Path, query: str, churn: Callable[[Engine, int], None], count: int
) -> dict[str, dict[str, Any]]:
    """Run `query` over `count` changes, restart the engine, `count` more: the final table."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(TABLE)
        engine.execute(query)
        churn(engine, count)
    with Engine(tmp_path / "data") as engine:  # the rows come back from the changelog
        churn(engine, count)
        return _final(engine)


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

    got = _run_across_restart(tmp_path, QUERY, churn, 100)
    db = duckdb.connect()  # its own connection: no table on the process-wide one
    items = db.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"('{k}', '{c}', {t}, {p})" for k, (c, t, p) in state.items())
        + ") as t(id, cat, t, price)"
    )
    expected = db.sql(
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


PEERS_QUERY = (
    "CREATE TABLE o AS SELECT id, "
    "SUM(price) OVER (PARTITION BY cat ORDER BY t) AS d, "
    "COUNT(*) OVER (PARTITION BY cat ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND "
    "CURRENT ROW) AS u, "
    "MIN(price) OVER (PARTITION BY cat ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND "
    "CURRENT ROW) AS m, "
    "SUM(price) OVER (PARTITION BY cat ORDER BY t RANGE BETWEEN INTERVAL '20' MILLISECONDS "
    "PRECEDING AND CURRENT ROW) AS r, "
    "AVG(price) OVER (PARTITION BY cat ORDER BY t ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) "
    "AS w FROM items EMIT CHANGES;"
)
#: the same over DuckDB: a RANGE frame holds the row's peers (equal t); ROWS ties go by key
PEERS_EXPECTED = (
    "select id, sum(price) over (partition by cat order by t), "
    "count(*) over (partition by cat order by t range between unbounded preceding and "
    "current row), min(price) over (partition by cat order by t range between unbounded "
    "preceding and current row), sum(price) over (partition by cat order by t range between "
    "20 preceding and current row), avg(price) over (partition by cat order by t, id rows "
    "between 2 preceding and current row) from items"
)


def test_over_a_table_gives_peers_one_range_result_as_they_come_move_and_leave(
    tmp_path: Path,
) -> None:
    """Rows of equal ORDER BY values (peers) are all inside each other's RANGE frames: when a
    peer enters, moves or leaves, every peer's result (and the later rows') is written again.
    The output table is compared with DuckDB's after every batch, across a restart."""
    rng = random.Random(22)
    state: dict[str, tuple[str, int | None, int | None]] = {}
    db = duckdb.connect()
    db.execute("create table items (id varchar, cat varchar, t bigint, price bigint)")
    checked = 0

    def check(engine: Engine) -> None:
        nonlocal checked
        engine.drain()
        db.execute("delete from items")
        if state:
            db.executemany(
                "insert into items values (?, ?, ?, ?)", [(k, *v) for k, v in state.items()]
            )
        expected = db.execute(PEERS_EXPECTED).fetchall()
        got = _final(engine)
        assert set(got) == {r[0] for r in expected}
        for key, d, u, m, r, w in expected:
            row = got[key]
            assert (row["D"], row["U"], row["M"], row["R"]) == (d, u, m, r), key
            assert row["W"] == pytest.approx(w), key
        checked += 1

    def churn(engine: Engine, count: int) -> None:
        for _ in range(count):
            key = f"i{rng.randrange(30)}"
            if rng.random() < 0.2:
                state.pop(key, None)
                engine.log.append("items", [(key.encode(), None)])
            else:
                # few times 10 ms apart: many peers, and frames of 20 ms hold 3 times' rows
                t = None if rng.random() < 0.05 else 10 * rng.randrange(8)
                price = None if rng.random() < 0.05 else rng.randrange(1, 99)
                state[key] = (f"c{rng.randrange(2)}", t, price)
                body = {"CAT": state[key][0], "T": t, "PRICE": price}
                engine.log.append("items", [(key.encode(), json.dumps(body).encode())])
            if rng.random() < 0.3:
                check(engine)
        check(engine)

    _run_across_restart(tmp_path, PEERS_QUERY, churn, 120)
    assert checked > 40
    assert len(state) > 15
