"""`.process`: stateful processing per key, against the SQL aggregation that computes the same;
event-time and processing-time timers; a raising function; state kept across a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.testing.wait import wait_for
from tests.frames import _process_fns as fns

EVENTS = (
    "CREATE STREAM events (k STRING KEY, v INT) "
    "WITH (kafka_topic='events', value_format='JSON', partitions=2);"
)
SCHEMA = {"n": "BIGINT", "total": "BIGINT"}
#: per-record changes from the SQL aggregation, as the kill -9 test's engine has them
PER_RECORD = {"ksql.streams.cache.max.bytes.buffering": "0"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never", properties=PER_RECORD)
    e.execute(EVENTS)
    yield e
    e.close()


def events(start: int, stop: int, keys: int = 5) -> list[dict[str, Any]]:
    return [{"K": f"k{i % keys}", "V": i, "ROWTIME": 1000 + 700 * i} for i in range(start, stop)]


def by_key(engine: Engine, name: str) -> dict[str, list[tuple[dict[str, Any], int]]]:
    """Each key's records of a sink, in their order: (value, timestamp)."""
    src = engine.catalog.sources[name.upper()]
    out: dict[str, list[tuple[dict[str, Any], int]]] = {}
    for p in range(len(engine.log.describe_topic(src.topic).partitions)):
        start, _ = engine.log.offsets(src.topic, p)
        for batch in engine.log.read(src.topic, p, start):
            for r in batch.to_pylist():
                out.setdefault(r["key"].decode(), []).append(
                    (json.loads(r["value"]), r["timestamp"])
                )
    return out


def processing_log(engine: Engine) -> list[dict[str, Any]]:
    start, _ = engine.log.offsets(PROCESSING_LOG, 0)
    return [
        json.loads(r["value"])
        for b in engine.log.read(PROCESSING_LOG, 0, start)
        for r in b.to_pylist()
    ]


def test_a_running_count_is_the_sql_aggregation_record_for_record(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE counts AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k;"
    )
    engine.frame("events").process(fns.running_count, schema=SCHEMA).to_stream("counted")
    # in several polls, so that state carries from batch to batch
    for start in range(0, 300, 70):
        engine.insert_many("events", events(start, min(start + 70, 300)))
        engine.drain()
    want = by_key(engine, "counts")
    got = by_key(engine, "counted")
    assert set(got) == {f"k{i}" for i in range(5)}
    assert got == want
    assert [v["N"] for v, _ in got["k3"]] == list(range(1, 61))


def test_event_time_timers_fire_as_the_stream_time_passes_them(tmp_path: Path) -> None:
    """Sessions by a gap of event time: each written once the stream passes its end, the same
    whatever the batches are (a batch of one record each, or all at once)."""
    # records of 3 keys in time order; all pause for 30 s at i = 60, and k2 from i = 45 on
    rows = [
        {"K": f"k{i % 3}", "V": i, "ROWTIME": 1000 * i + (30_000 if i >= 60 else 0)}
        for i in range(90)
        if not (i % 3 == 2 and 45 <= i < 60)
    ]
    # a key's first session: its records up to the first pause of more than the gap
    closed = []
    for key in ("k0", "k1", "k2"):
        mine = [r for r in rows if r["K"] == key]
        split = next(
            j for j in range(1, len(mine)) if mine[j]["ROWTIME"] - mine[j - 1]["ROWTIME"] > fns.GAP
        )
        first = mine[:split]
        closed.append((key, split, sum(r["V"] for r in first), first[-1]["ROWTIME"] + fns.GAP))
    outputs = []
    for chunk in (7, 90):
        e = Engine(tmp_path / f"data{chunk}", fsync="never")
        e.execute(EVENTS)
        e.frame("events").process(fns.sessions, schema=SCHEMA).to_stream("sessions")
        for start in range(0, 90, chunk):
            e.insert_many("events", rows[start : start + chunk])
            e.drain()
        got = by_key(e, "sessions")
        e.close()
        outputs.append(got)
        assert sorted((k, v["N"], v["TOTAL"], t) for k, vs in got.items() for v, t in vs) == (
            sorted(closed)
        )
    assert outputs[0] == outputs[1]


def test_processing_time_timers_fire_on_the_clock_between_batches(engine: Engine) -> None:
    engine.frame("events").process(fns.ping_later, schema=SCHEMA).to_stream("pings")
    engine.insert_many("events", events(0, 2, keys=2))
    engine.drain()

    def pinged() -> bool:
        engine.drain()  # idle polls: no records, only the clock
        return len(by_key(engine, "pings")) == 2

    wait_for(pinged, timeout=30)
    got = by_key(engine, "pings")
    assert got == {k: [({"N": -1, "TOTAL": 0}, got[k][0][1])] for k in ("k0", "k1")}


def test_a_raising_function_goes_to_the_processing_log_and_the_query_goes_on(
    engine: Engine,
) -> None:
    engine.frame("events").process(fns.fails_on_bad, schema=SCHEMA).to_stream("counted")
    rows = events(0, 10, keys=2)
    rows[3]["K"] = "bad"
    engine.insert_many("events", rows)
    engine.drain()
    got = by_key(engine, "counted")
    assert "bad" not in got
    assert [v["N"] for v, _ in got["k0"]] == [1, 2, 3, 4, 5]
    assert [v["N"] for v, _ in got["k1"]] == [1, 2, 3, 4]
    (error,) = processing_log(engine)
    assert "bad key" in error["message"]
    assert error["topic"] == "events"
    assert isinstance(error["offset"], int)
    # the raising call changed no state: the key counts from 1 when it works
    engine.insert_many("events", [{"K": "k0", "V": 1, "ROWTIME": 99_000}])
    engine.drain()
    assert by_key(engine, "counted")["k0"][-1][0]["N"] == 6


def test_a_record_of_the_wrong_type_goes_to_the_processing_log(engine: Engine) -> None:
    engine.frame("events").process(fns.wrong_type, schema=SCHEMA).to_stream("typed")
    engine.insert_many("events", [{"K": k, "V": 1, "ROWTIME": 5} for k in ("even", "odd")])
    engine.drain()
    assert by_key(engine, "typed") == {"even": [({"N": 1, "TOTAL": 0}, 5)]}
    (error,) = processing_log(engine)
    assert "'odd'" in error["message"]
    assert "BIGINT" in error["message"]


def test_a_record_without_a_column_goes_to_the_processing_log(engine: Engine) -> None:
    engine.frame("events").process(fns.lacks_total, schema=SCHEMA).to_stream("whole")
    engine.insert_many("events", [{"K": k, "V": 1, "ROWTIME": 5} for k in ("full", "short")])
    engine.drain()
    assert by_key(engine, "whole") == {"full": [({"N": 1, "TOTAL": 0}, 5)]}
    (error,) = processing_log(engine)
    assert "'short'" in error["message"]
    assert "without TOTAL" in error["message"]


def test_state_and_timers_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    e = Engine(data, fsync="never")
    e.execute(EVENTS)
    e.frame("events").process(fns.running_count, schema=SCHEMA).to_stream("counted")
    e.frame("events").process(fns.sessions, schema=SCHEMA).to_stream("sessions")
    e.insert_many("events", events(0, 10, keys=2))
    e.drain()
    e.close()
    e = Engine(data, fsync="never")  # the queries come back from the command topic
    shown = e.execute("SHOW QUERIES;")[0].rows
    assert any("_process_fns:running_count" in q["queryString"] for q in shown)
    # a record far later: passes the sessions' timers, set before the restart
    e.insert_many("events", [{"K": "k0", "V": 100, "ROWTIME": 1_000_000}])
    e.drain()
    counted = by_key(e, "counted")
    sessions = by_key(e, "sessions")
    e.close()
    assert [v["N"] for v, _ in counted["k0"]] == [1, 2, 3, 4, 5, 6]
    assert counted["k0"][-1][0]["TOTAL"] == 0 + 2 + 4 + 6 + 8 + 100
    assert {k: [v for v, _ in vs] for k, vs in sessions.items()} == {
        "k0": [{"N": 5, "TOTAL": 20}],
        "k1": [{"N": 5, "TOTAL": 25}],
    }


def test_process_needs_a_persistent_query_and_a_module_function(engine: Engine) -> None:
    frame = engine.frame("events").process(fns.running_count, schema=SCHEMA)
    with pytest.raises(HispeedError, match="persistent query"):
        frame.collect()
    with pytest.raises(HispeedError, match="lambda"):
        engine.frame("events").process(lambda *a: None, schema=SCHEMA).to_stream("x")
    counts = engine.frame("events").group_by("k").agg(n=fns_count())
    with pytest.raises(HispeedError, match="aggregation"):
        counts.process(fns.running_count).to_stream("y")


def fns_count() -> Any:
    from hispeed import col

    return col("*").count()
