"""The demo's scenarios left running: outputs and state that do not grow with time (issue 16,
defect 9: the drone-weather join's output grew with time, from 21 records/s in to 3,753 out)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from hispeed.cli.demo_app import scenario_sql
from hispeed.demo.generators import generator
from hispeed.engine import Engine

#: seconds of the generators' records, at their demo rates, from this start time
SPAN_S = 240
T0 = 1_700_000_000_000


def _without_connectors(sql: str) -> str:
    """The scenario's statements but its generators (the test appends their records)."""
    return re.sub(r"CREATE SOURCE CONNECTOR[^;]*;", "", sql)


def _append(engine: Engine, name: str, rate: float) -> None:
    gen = generator(name, 42)
    n = int(SPAN_S * rate)
    records = [
        {
            "key": r.key_bytes(),
            "value": r.value_bytes(),
            "timestamp": T0 + int(i * 1000 / rate),
        }
        for i, r in gen.take(n, 0)
    ]
    for chunk in range(0, n, 500):
        engine.log.append(gen.topic, records[chunk : chunk + 500])


def test_the_drone_weather_join_gives_as_much_late_as_early(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        for topic in ("weather", "drone"):  # as the generators create them
            engine.log.create_topic(topic, 1)
        engine.execute(_without_connectors(scenario_sql("weather_drone")))
        _append(engine, "weather", 20)  # the scenario's rates
        _append(engine, "drone", 1)
        engine.drain()
        stamps = [  # each output row's time
            t
            for batch in engine.log.read("DRONE_WEATHER", 0, 0)
            for t in batch.column("timestamp").to_pylist()
        ]
    assert stamps  # the join joins
    early = sum(T0 + 30_000 <= t < T0 + 90_000 for t in stamps)
    late = sum(T0 + 150_000 <= t < T0 + 210_000 for t in stamps)
    # a window of an hour gives ever more rows per drone reading as the hour fills; a
    # bounded one as many late as early (the generators are random: allow a third more)
    assert late <= early * 4 / 3, (early, late)
    assert len(stamps) < 100 * SPAN_S  # rows a second, not thousands


def test_the_leaderboards_bidders_are_bounded_however_long_it_runs() -> None:
    assert re.search(r"'generator'='nexmark'[^;]*'keys'='\d+'", scenario_sql("leaderboard"))
    keys = 40  # a person joins every 50 records: past 40, ids come back
    gen = generator("nexmark", 42, keys)
    seen: dict[str, set[int]] = {"bidder": set(), "auction": set()}
    for _, r in gen.take(50 * keys * 4, 0):
        value = msgspec.json.decode(r.value_bytes())
        if r.topic == "bid":
            seen["bidder"].add(value["bidder"])
            seen["auction"].add(value["auction"])
    assert len(seen["bidder"]) <= keys
    assert len(seen["auction"]) <= 3 * keys + 1


def test_every_windowed_aggregation_and_join_of_the_demo_has_a_grace_period() -> None:
    """Without one a window stays open a day (ksqlDB's default), and so does its state."""
    from hispeed.cli.demo_app import SCENARIOS

    for name in SCENARIOS:
        sql = re.sub(r"--[^\n]*", "", scenario_sql(name))
        for clause in re.findall(r"(WINDOW\s+\w+\s*\([^)]*\)|WITHIN\s+[^\n]*)", sql, re.I):
            assert "GRACE PERIOD" in clause.upper(), (name, clause)
