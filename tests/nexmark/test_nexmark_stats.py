"""Nexmark q15 and q16 (statistics per day with COUNT(DISTINCT ...) and FILTER (WHERE ...)),
each query file's final table compared with DuckDB's computation over the same generated
events (decoded with `json`, not hispeed). Events come 0.04 a second of event time here, so
that 10,000 events span about three days."""

from __future__ import annotations

import json
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
RATE = 0.04

BANDS = ("price < 10000", "price >= 10000 and price < 1000000", "price >= 1000000")
COUNTS = ", ".join(
    [
        "count(*)",
        *(f"count(*) filter (where {b})" for b in BANDS),
        "count(distinct bidder)",
        *(f"count(distinct bidder) filter (where {b})" for b in BANDS),
        "count(distinct auction)",
        *(f"count(distinct auction) filter (where {b})" for b in BANDS),
    ]
)
NAMES = [
    f"{prefix}_{what}"
    for what in ("BIDS", "BIDDERS", "AUCTIONS")
    for prefix in ("TOTAL", "RANK1", "RANK2", "RANK3")
]
DAY = "strftime(make_timestamp(dateTime * 1000), '%Y-%m-%d')"


@pytest.fixture(scope="module")
def events() -> Events:
    return NexmarkGenerator(42, rate=RATE).events(EVENTS)


def _final(tmp_path: Path, name: str) -> tuple[dict[Any, dict[str, Any]], int]:
    """The table the query's changelog leaves (key -> value), and how many changes."""
    with Engine(tmp_path / "data", properties={"query.max.poll.records": 1000}) as engine:
        fill_log(engine.log, EVENTS, gen=NexmarkGenerator(42, rate=RATE))
        run_query(engine, name)
        table = outputs(engine, name)
    final: dict[Any, dict[str, Any]] = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        final[k] = json.loads(v)
    return final, table.num_rows


@pytest.mark.slow
def test_q15_daily_statistics_match_duckdb(tmp_path: Path, events: Events) -> None:
    bid = events.bid  # noqa: F841 (duckdb)
    rows = DUCK.sql(f"select {DAY}, {COUNTS} from bid group by all").fetchall()
    expected = {r[0]: dict(zip(NAMES, r[1:], strict=True)) for r in rows}
    final, changes = _final(tmp_path, "q15")
    # the key is the day's text (KAFKA STRING)
    got = {k.decode(): {n: v[n] for n in NAMES} for k, v in final.items()}
    assert len(expected) >= 3
    assert got == expected
    assert changes > len(expected)  # updated as bids came, batch by batch


@pytest.mark.slow
def test_q16_channel_statistics_match_duckdb(tmp_path: Path, events: Events) -> None:
    bid = events.bid  # noqa: F841 (duckdb)
    minute = "max(strftime(make_timestamp(dateTime * 1000), '%H:%M'))"
    rows = DUCK.sql(f"select channel, {DAY}, {minute}, {COUNTS} from bid group by all").fetchall()
    expected = {(r[0], r[1]): dict(zip(["MINUTE", *NAMES], r[2:], strict=True)) for r in rows}
    final, _ = _final(tmp_path, "q16")
    got = {}
    for k, v in final.items():
        key = json.loads(k)  # JSON key: the channel and the day
        got[(key["CHANNEL"], key["DAY"])] = {n: v[n] for n in ["MINUTE", *NAMES]}
    assert len({day for _, day in expected}) >= 3
    assert got == expected
