"""Nexmark: the generator against the specification's rules, and each query's outputs against
DuckDB's computation over the same generated events (decoded with `json`, not hispeed)."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from hispeed.bench.nexmark import outputs, run_flink_query, run_query
from hispeed.demo.generators import generator
from hispeed.demo.nexmark import Events, NexmarkGenerator, fill_log, fill_side_input
from hispeed.engine import Engine

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

EVENTS = 10_000


@pytest.fixture(scope="module")
def events() -> Events:
    return NexmarkGenerator(42).events(EVENTS)


def test_proportions_ids_and_determinism(events: Events) -> None:
    assert (events.person.num_rows, events.auction.num_rows, events.bid.num_rows) == (
        EVENTS // 50,
        3 * EVENTS // 50,
        46 * EVENTS // 50,
    )
    # ids in order of appearance from 1000; kinds by position modulo 50
    assert events.person.column("id").to_pylist() == list(range(1000, 1000 + EVENTS // 50))
    assert events.auction.column("id").to_pylist() == list(range(1000, 1000 + 3 * EVENTS // 50))
    assert set((np.array(events.bid.column("position")) % 50).tolist()) == set(range(4, 50))
    # the same seed gives the same events from any starting position; another seed does not
    again = NexmarkGenerator(42).events(1000, 8_345)
    tail = events.bid.filter(
        np.isin(np.array(events.bid.column("position")), np.arange(8_345, 9_345))
    )
    assert again.bid.equals(tail)
    across = NexmarkGenerator(42).events(400, 9_800)  # two blocks of random numbers
    whole = NexmarkGenerator(42).events(10_200)
    assert across.auction.equals(
        whole.auction.slice(whole.auction.num_rows - across.auction.num_rows)
    )
    assert not NexmarkGenerator(7).events(1000).bid.equals(NexmarkGenerator(42).events(1000).bid)


def test_hot_ratios_prices_and_categories(events: Events) -> None:
    bid = events.bid.to_pandas()
    # half the bids go to a hot auction (a multiple of 100 above 1000), a quarter of the
    # others' chance aside; hot bidders (1 more than a multiple of 100) three quarters
    hot_auction = ((bid.auction - 1000) % 100 == 0).mean()
    hot_bidder = ((bid.bidder - 1000) % 100 == 1).mean()
    assert 0.48 < hot_auction < 0.56
    assert 0.73 < hot_bidder < 0.80
    assert bid.price.min() >= 100
    assert bid.price.max() <= 100_000_000
    assert 0.45 < (bid.channel.isin(["Google", "Facebook", "Baidu", "Apple"])).mean() < 0.55
    auction = events.auction.to_pandas()
    assert set(auction.category) == {10, 11, 12, 13, 14}
    assert (auction.reserve > auction.initialBid).all()
    assert (auction.expires > auction.dateTime).all()
    # a bid never names an auction more than the specification's lead ahead
    assert (bid.auction < 1000 + 3 * (bid.position // 50 + 1) + 10).all()


def test_datagen_kind_sends_the_same_events(events: Events) -> None:
    got = list(generator("nexmark_spec", 42).take(100))
    topics = Counter(r.topic for _, r in got)
    assert topics == {"person": 2, "auction": 6, "bid": 92}
    first_bid = next(r for _, r in got if r.topic == "bid")
    expected = events.bid.slice(0, 1).to_pylist()[0]
    del expected["position"]
    assert json.loads(first_bid.value_bytes()) == expected


# -- queries ---------------------------------------------------------------------------------

STREAM_EXPECTED = {
    "q0": "select auction, bidder, price, dateTime, extra from bid",
    "q1": "select auction, bidder, 0.908 * price as price, dateTime, extra from bid",
    "q2": "select auction, price from bid where auction % 123 = 0",
    "q3": (
        "select a.seller, p.name, p.city, p.state, a.id from auction a join person p "
        "on a.seller = p.id and p.dateTime <= a.dateTime "
        "where a.category = 10 and p.state in ('OR', 'ID', 'CA')"
    ),
    "q10": (
        "select auction, bidder, price, dateTime, extra, "
        "strftime(make_timestamp(dateTime * 1000), '%Y-%m-%d') as dt, "
        "strftime(make_timestamp(dateTime * 1000), '%H') as hm from bid"
    ),
    "q13": (
        "select auction % 10000, auction, bidder, price, dateTime, cast(auction % 10000 as "
        "varchar) from bid"
    ),
    "q14": (
        "select auction, bidder, 0.908 * price as price, "
        "case when hour(make_timestamp(dateTime * 1000)) between 8 and 18 then 'dayTime' "
        "when hour(make_timestamp(dateTime * 1000)) <= 6 "
        "or hour(make_timestamp(dateTime * 1000)) >= 20 then 'nightTime' "
        "else 'otherTime' end as bidTimeType, dateTime, extra, "
        "length(extra) - length(replace(extra, 'c', '')) as c_counts "
        "from bid where 0.908 * price > 1000000 and 0.908 * price < 50000000"
    ),
    "q20": (
        "select b.auction, b.bidder, b.price, b.channel, b.url, b.dateTime, a.itemName, "
        "a.description, a.initialBid, a.reserve, a.dateTime, a.expires, a.seller, a.category "
        "from bid b join auction a on b.auction = a.id and a.dateTime <= b.dateTime "
        "where a.category = 10"
    ),
    "q21": (
        "select auction, bidder, price, channel, case lower(channel) when 'apple' then '0' "
        "when 'google' then '1' when 'facebook' then '2' when 'baidu' then '3' "
        "else regexp_extract(url, '(&|^)channel_id=([^&]*)', 2) end "
        "from bid where lower(channel) in ('apple', 'google', 'facebook', 'baidu') "
        "or url like '%channel_id=%'"
    ),
    "q22": (
        "select auction, bidder, price, channel, split_part(url, '/', 4), "
        "split_part(url, '/', 5), split_part(url, '/', 6) from bid"
    ),
}


def _norm(row: Any) -> tuple[Any, ...]:
    return tuple(round(float(v), 6) if isinstance(v, float | Decimal) else v for v in row)


def _run(tmp_path: Path, name: str) -> list[tuple[Any, ...]]:
    with Engine(tmp_path / "data") as engine:
        fill_log(engine.log, EVENTS)
        if name == "q13":
            fill_side_input(engine.log)
        run_query(engine, name)
        table = outputs(engine, name)
        return [
            (k, None if v is None else json.loads(v))
            for k, v in zip(
                table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
            )
        ]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STREAM_EXPECTED))
def test_stream_query_matches_duckdb(tmp_path: Path, events: Events, name: str) -> None:
    bid, auction, person = events.bid, events.auction, events.person  # noqa: F841 (duckdb)
    expected = Counter(_norm(r) for r in DUCK.sql(STREAM_EXPECTED[name]).fetchall())
    # a join's key column (the seller, the auction) is the record's key (KAFKA BIGINT)
    got = Counter(
        _norm(((int.from_bytes(k, "big", signed=True),) if k else ()) + tuple(v.values()))
        for k, v in _run(tmp_path, name)
    )
    assert sum(expected.values()) > 0
    assert got == expected


@pytest.mark.slow
def test_q17_matches_duckdb(tmp_path: Path, events: Events) -> None:
    bid = events.bid  # noqa: F841 (duckdb)
    rows = DUCK.sql(
        "select auction, strftime(make_timestamp(dateTime // 86400000 * 86400000000), "
        "'%Y-%m-%d'), count(*), count(*) filter (where price < 10000), "
        "count(*) filter (where price >= 10000 and price < 1000000), "
        "count(*) filter (where price >= 1000000), min(price), max(price), avg(price), "
        "sum(price) from bid group by all"
    ).fetchall()
    expected = {r[0]: _norm(r[1:]) for r in rows}
    final: dict[int, tuple[Any, ...]] = {}
    for key, value in _run(tmp_path, "q17"):
        final[int.from_bytes(key[:8], "big", signed=True)] = _norm(tuple(value.values()))
    assert final == expected


@pytest.mark.slow
def test_q11_sessions_match_duckdb(tmp_path: Path, events: Events) -> None:
    bid = events.bid  # noqa: F841 (duckdb)
    # a bidder's session goes on while bids come at most 10 s apart (ksqlDB's inactivity gap)
    rows = DUCK.sql(
        "with marked as (select bidder, dateTime, case when dateTime - lag(dateTime) over "
        "(partition by bidder order by dateTime, position) > 10000 then 1 else 0 end as new "
        "from bid), numbered as (select *, sum(new) over (partition by bidder order by "
        "dateTime rows unbounded preceding) as s from marked) "
        "select bidder, count(*), min(dateTime), max(dateTime) from numbered group by bidder, s"
    ).fetchall()
    expected = Counter(rows)
    final: dict[bytes, Any] = {}
    for key, value in _run(tmp_path, "q11"):
        final[key] = value
    got = Counter(
        (int.from_bytes(k[:8], "big", signed=True), v["BID_COUNT"], v["STARTTIME"], v["ENDTIME"])
        for k, v in final.items()
        if v is not None
    )
    assert got == expected


# -- Top-N and deduplication (ROW_NUMBER() OVER): the table their changes leave ----------------

TOPN_EXPECTED = {
    # each bidder's latest bid per auction; of bids at the same time the later one, as
    # Flink's keep-last deduplication keeps it (docs/sql.md, "Top-N and deduplication")
    "q18": (
        "select bidder, auction, price, channel, url, dateTime, extra from (select *, "
        "row_number() over (partition by bidder, auction order by dateTime desc, position "
        "desc) "
        "as rn from bid) where rn = 1"
    ),
    # the 10 highest bids per auction; equal prices go to the bid that came first
    "q19": (
        "select auction, rank_number, bidder, price, channel, url, dateTime, extra from "
        "(select *, row_number() over (partition by auction order by price desc, position) "
        "as rank_number from bid) where rank_number <= 10"
    ),
}


def _final_table(engine: Engine, topic: str) -> tuple[set[tuple[Any, ...]], int]:
    """The rows a table's changelog leaves (each key's last value; tombstones delete), and
    how many changes it took."""
    table = engine.log.read_table(topic, 0)
    latest: dict[bytes, Any] = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        latest[k] = None if v is None else {**json.loads(k), **json.loads(v)}
    rows = {tuple(sorted(r.items())) for r in latest.values() if r is not None}
    return rows, table.num_rows


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TOPN_EXPECTED))
@pytest.mark.parametrize("form", ["hispeed", "flink"])
def test_top_n_and_dedup_match_duckdb(tmp_path: Path, events: Events, name: str, form: str) -> None:
    """q18 and q19 as hispeed's dialect says them (examples/nexmark/qN.sql) and as a Flink
    user writes them (examples/nexmark/flink/: Nexmark's table and views, a sink table and
    INSERT INTO, run unchanged)."""
    bid = events.bid  # noqa: F841 (duckdb)
    result = DUCK.sql(TOPN_EXPECTED[name])
    names = [c.upper() for c in result.columns]
    expected = {tuple(sorted(zip(names, r, strict=True))) for r in result.fetchall()}
    # batches of 1,000 records: the top N changes across batches, not within one
    with Engine(tmp_path / "data", properties={"query.max.poll.records": 1000}) as engine:
        fill_log(engine.log, EVENTS)
        if form == "flink":
            run_flink_query(engine, name)
            got, changes = _final_table(engine, f"NEXMARK_{name.upper()}")
        else:
            run_query(engine, name)
            got, changes = _final_table(engine, name.upper())
    assert len(expected) > 1000
    assert got == expected
    # rows were replaced (a newer bid, a higher price) on the way: a changelog, not a batch
    assert changes > len(expected)


@pytest.mark.slow
def test_q9_winning_bids_match_duckdb(tmp_path: Path, events: Events) -> None:
    """Each auction's highest bid while it was open: ROW_NUMBER() over an interval join."""
    bid, auction = events.bid, events.auction  # noqa: F841 (duckdb)
    result = DUCK.sql(
        "select id, itemName, description, initialBid, reserve, dateTime, expires, seller, "
        "category, bidder, price, bid_dateTime from (select a.*, b.bidder, b.price, "
        "b.dateTime as bid_dateTime, row_number() over (partition by a.id order by b.price "
        "desc, b.dateTime, b.position) as rn from auction a join bid b on a.id = b.auction "
        "and b.dateTime between a.dateTime and a.expires) where rn = 1"
    )
    names = [c.upper() for c in result.columns]
    expected = {tuple(sorted(zip(names, r, strict=True))) for r in result.fetchall()}
    with Engine(tmp_path / "data", properties={"query.max.poll.records": 1000}) as engine:
        fill_log(engine.log, EVENTS)
        run_query(engine, "q9")
        table = engine.log.read_table("Q9", 0)
    latest: dict[bytes, Any] = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        # one key column in JSON: the id itself
        latest[k] = None if v is None else {"ID": json.loads(k), **json.loads(v)}
    got = {tuple(sorted(r.items())) for r in latest.values() if r is not None}
    assert len(expected) > 300
    assert got == expected
    assert table.num_rows > len(expected)  # a higher bid replaced the leader on the way
