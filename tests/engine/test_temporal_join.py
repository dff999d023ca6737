"""Temporal (versioned) joins, `JOIN t FOR SYSTEM_TIME AS OF s.ts`: each stream record joins
its key's table row as it was at the record's time, checked against DuckDB's ASOF JOIN over
the same rows; stream records that come after newer versions (late) still join theirs."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

SOURCES = (
    "CREATE TABLE rates (currency STRING PRIMARY KEY, rate INT, ts BIGINT) "
    "WITH (kafka_topic='rates', value_format='JSON', partitions=1, timestamp='ts');"
    "CREATE STREAM orders (id INT, currency STRING, amount INT, ts BIGINT) "
    "WITH (kafka_topic='orders', value_format='JSON', partitions=1, timestamp='ts');"
)


def _rows(seed: int) -> tuple[list[tuple[str, int, int]], list[tuple[int, str, int, int]]]:
    rnd = random.Random(seed)
    currencies = ["EUR", "GBP", "JPY", "CHF", "NOK"]
    # 200 versions at distinct times per currency (ties have no order in ASOF)
    # a table's changes come in time order (its changelog); orders in any order
    times = sorted(rnd.sample(range(1, 100_000), 200))
    rates = [(rnd.choice(currencies), rnd.randint(1, 1000), t) for t in times]
    orders = [
        (i, rnd.choice([*currencies, "USD"]), rnd.randint(1, 50), rnd.randint(0, 100_000))
        for i in range(600)
    ]
    return rates, orders


def _outputs(engine: Engine, topic: str) -> Counter[tuple[Any, ...]]:
    table = engine.log.read_table(topic, 0)
    return Counter(
        tuple(json.loads(v).values()) for v in table.column("value").to_pylist() if v is not None
    )


@pytest.mark.parametrize("late", [False, True])
def test_each_order_joins_the_rate_of_its_time(tmp_path: Path, late: bool) -> None:
    rates, orders = _rows(7)
    con = duckdb.connect()
    con.execute(
        "create table rates_t as select * from "
        f"(values {', '.join(repr(r) for r in rates)}) t(currency, rate, ts)"
    )
    con.execute(
        "create table orders_t as select * from "
        f"(values {', '.join(repr(o) for o in orders)}) t(id, currency, amount, ts)"
    )
    expected = Counter(
        con.sql(
            "select o.id, o.amount * r.rate from orders_t o asof join rates_t r "
            "on o.currency = r.currency and o.ts >= r.ts"
        ).fetchall()
    )
    assert len(expected) > 300
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE STREAM priced AS SELECT o.currency AS currency, o.id AS id, "
            "o.amount * r.rate AS total "
            "FROM orders o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r "
            "ON o.currency = r.currency EMIT CHANGES;"
        )
        rate_rows = [{"CURRENCY": c, "RATE": r, "TS": t, "ROWTIME": t} for c, r, t in rates]
        order_rows = [
            {"ID": i, "CURRENCY": c, "AMOUNT": a, "TS": t, "ROWTIME": t} for i, c, a, t in orders
        ]
        engine.insert_many("RATES", rate_rows)
        if late:
            # every version is in (and taken) before any order: the table's rows are the
            # newest when the orders come, and each must still find the version of its time
            engine.drain()
        engine.insert_many("ORDERS", order_rows)
        engine.drain()
        assert _outputs(engine, "PRICED") == expected


def test_versions_survive_a_restart_and_deletions_end_one(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE STREAM priced AS SELECT o.currency AS currency, o.id AS id, r.rate AS rate "
            "FROM orders o LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r "
            "ON o.currency = r.currency EMIT CHANGES;"
        )
        engine.insert("RATES", {"CURRENCY": "EUR", "RATE": 10, "TS": 100}, 100)
        engine.insert("RATES", {"CURRENCY": "EUR", "RATE": 20, "TS": 200}, 200)
        engine.drain()
    with Engine(tmp_path / "data") as engine:
        engine.execute("DELETE FROM rates WHERE currency = 'EUR';")  # a tombstone, at now
        engine.drain()
        for i, ts in enumerate([50, 150, 250]):
            engine.insert("ORDERS", {"ID": i, "CURRENCY": "EUR", "AMOUNT": 1, "TS": ts}, ts)
        engine.drain()
        got = sorted(_outputs(engine, "PRICED"))
    # before the first version: none; then each version of its time (not the deletion,
    # which is later than all of them)
    assert got == [(0, None), (1, 10), (2, 20)]


def test_on_conditions_past_the_key_decide_the_match(tmp_path: Path) -> None:
    """ON's other conditions (several conditions: docs/sql.md) apply to the version of the
    record's time: a LEFT JOIN keeps the record, with NULLs, when that version fails them."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE STREAM priced AS SELECT o.currency AS currency, o.id AS id, r.rate AS rate "
            "FROM orders o LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r "
            "ON o.currency = r.currency AND o.amount < r.rate EMIT CHANGES;"
        )
        engine.insert("RATES", {"CURRENCY": "EUR", "RATE": 10, "TS": 100}, 100)
        engine.insert("RATES", {"CURRENCY": "EUR", "RATE": 30, "TS": 200}, 200)
        engine.drain()
        for i, (ts, amount) in enumerate([(150, 5), (150, 20), (250, 20)]):
            row = {"ID": i, "CURRENCY": "EUR", "AMOUNT": amount, "TS": ts}
            engine.insert("ORDERS", row, ts)
        engine.drain()
        got = sorted(_outputs(engine, "PRICED"))
    assert got == [(0, 10), (1, None), (2, 30)]


@pytest.mark.parametrize(
    ("join", "words", "at"),
    [
        (
            "orders o JOIN orders FOR SYSTEM_TIME AS OF o.ts AS p WITHIN 1 SECOND ON o.id = p.id",
            "must be a stream and P a table",
            "JOIN",
        ),
        (
            "orders o JOIN rates FOR SYSTEM_TIME AS OF o.currency AS r ON o.currency = r.currency",
            "not STRING",
            "o.currency AS r",
        ),
        (
            "orders o JOIN rates FOR SYSTEM_TIME AS OF r.ts AS r ON o.currency = r.currency",
            "not of R",
            "r.ts",
        ),
        (
            "orders o JOIN rates FOR SYSTEM_TIME AS OF o.ts + 1 AS r ON o.currency = r.currency",
            "takes a column of the stream",
            "+ 1",  # an operation is placed at its operator
        ),
    ],
)
def test_refused_with_place(tmp_path: Path, join: str, words: str, at: str) -> None:
    text = f"CREATE STREAM x AS SELECT o.id AS id FROM {join} EMIT CHANGES;"
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        with pytest.raises(SqlError, match=words) as info:
            engine.execute(text)
    assert (info.value.line, info.value.column) == (1, text.index(at) + 1)


def test_a_subquery_joined_is_refused_at_its_place(tmp_path: Path) -> None:
    """Nexmark's Flink q13 joins `(SELECT *, PROCTIME() ...) B`: refused with its line and
    column (it was an AssertionError's traceback)."""
    text = (
        "CREATE STREAM x AS SELECT o.id AS id\n"
        "  FROM (SELECT * FROM orders) o JOIN rates r ON o.currency = r.currency EMIT CHANGES;"
    )
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        with pytest.raises(SqlError, match="subquery or a window table function") as info:
            engine.execute(text)
    assert (info.value.line, info.value.column) == (2, 8)
