"""Nexmark's window queries (q5, q7, q8: window table functions, then joins), each query file's
outputs compared with DuckDB's computation over the same generated events (decoded with
`json`, not hispeed). Events come 200 a second of event time here, so that 10,000 events
span 50 seconds and the queries' 10-second windows close."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.bench.nexmark import outputs, run_query
from hispeed.demo.nexmark import Events, NexmarkGenerator, fill_log
from hispeed.engine import Engine

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

EVENTS = 10_000
RATE = 200


@pytest.fixture(scope="module")
def events() -> Events:
    return NexmarkGenerator(42, rate=RATE).events(EVENTS)


def _run(tmp_path: Path, name: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    with Engine(tmp_path / "data") as engine:
        fill_log(engine.log, EVENTS, gen=NexmarkGenerator(42, rate=RATE))
        run_query(engine, name)
        table = outputs(engine, name)
        return [
            (k, json.loads(v))
            for k, v in zip(
                table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
            )
            if v is not None
        ]


def _bigint(key: bytes | None) -> int:
    assert key is not None
    return int.from_bytes(key[:8], "big", signed=True)


@pytest.mark.slow
def test_q5_hot_items_match_duckdb(tmp_path: Path, events: Events) -> None:
    bid = events.bid  # noqa: F841 (duckdb)
    # a hopping window's counts come once stream time passes its end, and its maximum once
    # the next window's counts come (2 s later): the windows ending by then are complete
    now = max(events.bid.column("dateTime").to_pylist())
    last = now // 2000 * 2000 - 2000
    rows = DUCK.sql(
        "with hops as (select auction, unnest(range(dateTime // 2000 * 2000 - 8000, "
        "dateTime // 2000 * 2000 + 1, 2000)) as s from bid), "
        "counts as (select auction, s, count(*) as num from hops group by all), "
        "top as (select s, max(num) as maxn from counts group by s) "
        "select c.s + 10000, c.auction, c.num, c.s from counts c join top t on c.s = t.s "
        f"where c.num >= t.maxn and c.s + 10000 <= {last}"
    ).fetchall()
    got = Counter(
        (_bigint(k), v["AUCTION"], v["NUM"], v["STARTTIME"]) for k, v in _run(tmp_path, "q5")
    )
    assert sum(got.values()) >= 15
    assert got == Counter(rows)


@pytest.mark.slow
def test_q7_highest_bid_matches_duckdb(tmp_path: Path, events: Events) -> None:
    bid = events.bid  # noqa: F841 (duckdb)
    now = max(events.bid.column("dateTime").to_pylist())
    rows = DUCK.sql(
        "with w as (select *, dateTime // 10000 * 10000 as s from bid), "
        "top as (select s, max(price) as maxprice from w group by s) "
        "select w.price, w.auction, w.bidder, w.dateTime, w.extra from w join top "
        f"on w.s = top.s and w.price = top.maxprice where w.s + 10000 <= {now}"
    ).fetchall()
    got = Counter(
        (_bigint(k), v["AUCTION"], v["BIDDER"], v["DATETIME"], v["EXTRA"])
        for k, v in _run(tmp_path, "q7")
    )
    assert sum(got.values()) >= 4
    assert got == Counter(rows)


@pytest.mark.slow
def test_q8_new_users_match_duckdb(tmp_path: Path, events: Events) -> None:
    person, auction = events.person, events.auction  # noqa: F841 (duckdb)
    pairs = (
        "select p.id, p.name, p.dateTime // 10000 * 10000 as s, "
        "greatest(p.dateTime, a.dateTime) as t from person p join auction a "
        "on p.id = a.seller and p.dateTime // 10000 = a.dateTime // 10000"
    )
    # the window aggregation's stream time is the newest joined row's time
    ((now,),) = DUCK.sql(f"select max(t) from ({pairs})").fetchall()
    rows = DUCK.sql(
        f"select distinct id, name, s from ({pairs}) where s + 10000 <= {now}"
    ).fetchall()
    got: Counter[tuple[Any, ...]] = Counter()
    for k, v in _run(tmp_path, "q8"):
        assert k is not None
        key = json.loads(k[:-8])  # JSON key, then the window's start
        got[(key["ID"], key["NAME"], v["STARTTIME"])] += 1
    assert sum(got.values()) >= 10
    assert got == Counter(rows)
