"""Nexmark q4 (the average winning price per category: an aggregation over an aggregated
table, with retractions), each step's final table compared with DuckDB's computation over
the same generated events (decoded with `json`, not hispeed)."""

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

EVENTS = 20_000

WINNERS = (
    "select a.id, a.category, max(b.price) as final from auction a join bid b "
    "on a.id = b.auction and b.dateTime between a.dateTime and a.expires group by all"
)


def _latest(engine: Engine, topic: str) -> tuple[dict[Any, Any], int]:
    table = engine.log.read_table(topic, 0)
    out: dict[Any, Any] = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        out[k] = None if v is None else json.loads(v)
    return {k: v for k, v in out.items() if v is not None}, table.num_rows


@pytest.mark.slow
def test_q4_average_winning_price_per_category_matches_duckdb(tmp_path: Path) -> None:
    events = NexmarkGenerator(42).events(EVENTS)
    bid, auction = events.bid, events.auction  # noqa: F841 (duckdb)
    winners = {(r[0], r[1]): r[2] for r in DUCK.sql(WINNERS).fetchall()}
    averages = dict(
        DUCK.sql(f"select category, avg(final) from ({WINNERS}) group by category").fetchall()
    )
    # batches of 500 records: an auction's maximum rises across batches, so the average
    # per category takes old maxima back
    with Engine(tmp_path / "data", properties={"query.max.poll.records": 500}) as engine:
        fill_log(engine.log, EVENTS)
        run_query(engine, "q4")
        maxima, max_changes = _latest(engine, "Q4_MAX")
        final, _ = _latest(engine, "Q4")
    got_winners = {}
    for k, v in maxima.items():
        key = json.loads(k)  # JSON key: the id and the category
        got_winners[(key["ID"], key["CATEGORY"])] = v["FINAL"]
    assert len(winners) > 500
    assert got_winners == winners
    assert max_changes > len(winners)  # maxima were replaced on the way
    # the key is the category (JSON, the key format of the table it aggregates)
    got = {json.loads(k): v["AVG_FINAL"] for k, v in final.items()}
    assert got.keys() == averages.keys()
    for category, average in averages.items():
        assert got[category] == pytest.approx(average, rel=1e-9)
