"""Nexmark q6 (average selling price by seller over their last 10 closed auctions:
examples/nexmark/q6.sql) against DuckDB over the same events: the winning bids, then each
seller's average over an auction and the 9 before it in closing order. The changelog is
decoded here (the KAFKA BIGINT key as 8 big-endian bytes, the value with `json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.bench.nexmark import run_query
from hispeed.demo.nexmark import NexmarkGenerator, fill_log
from hispeed.engine import Engine

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

EVENTS = 10_000


@pytest.mark.slow
def test_q6_average_selling_price_by_seller_matches_duckdb(tmp_path: Path) -> None:
    events = NexmarkGenerator(42).events(EVENTS)
    bid, auction = events.bid, events.auction  # noqa: F841 (duckdb)
    expected = DUCK.sql(
        "with winners as (select * from (select a.id, a.seller, a.expires, b.price, "
        "row_number() over (partition by a.id order by b.price desc, b.dateTime, b.position) "
        "as rn from auction a join bid b on a.id = b.auction and b.dateTime between "
        "a.dateTime and a.expires) where rn = 1) "
        "select id, seller, avg(price) over (partition by seller order by expires, id rows "
        "between 9 preceding and current row) from winners"
    ).fetchall()
    with Engine(tmp_path / "data", properties={"query.max.poll.records": 1000}) as engine:
        fill_log(engine.log, EVENTS)
        run_query(engine, "q6")
        table = engine.log.read_table("Q6", 0)
    latest: dict[int, Any] = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        latest[int.from_bytes(k, "big", signed=True)] = None if v is None else json.loads(v)
    got = {k: v for k, v in latest.items() if v is not None}
    assert len(expected) > 300
    # sellers with several auctions: the average runs over more than one row
    assert len({s for _, s, _ in expected}) < len(expected)
    assert set(got) == {r[0] for r in expected}
    for key, seller, avg in expected:
        assert got[key]["SELLER"] == seller
        assert got[key]["AVG_PRICE"] == pytest.approx(avg), key
    assert table.num_rows > len(expected)  # rows were revised on the way
