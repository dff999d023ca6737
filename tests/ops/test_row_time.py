"""An aggregate's row time: the newest record time it has seen, as Kafka Streams stamps it.

A late record (older than one its group already holds) changes the aggregate but not its time,
on the reference path and the vectorized ones, windowed or not, from a stream or a table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine

WINDOWS = {
    "none": "",
    "tumbling": "WINDOW TUMBLING (SIZE 1 SECOND)",
    "hopping": "WINDOW HOPPING (SIZE 2 SECONDS, ADVANCE BY 1 SECOND)",
    "session": "WINDOW SESSION (10 SECONDS)",
}
#: the record cache off (each record's change, reference path) and on (coalesced changes)
CACHES = {"per-record": "0", "coalesced": "10000000"}


@pytest.fixture(params=list(CACHES))
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        tmp_path / "data",
        fsync="never",
        properties={"ksql.streams.cache.max.bytes.buffering": CACHES[request.param]},
    )
    e.execute(
        "CREATE STREAM s (id STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON', "
        "partitions=1);"
    )
    yield e
    e.close()


def _row_times(engine: Engine, table: str) -> dict[tuple[str, int | None], int]:
    rows = engine.query(f"SELECT * FROM {table};")
    windowed = rows and "WINDOWSTART" in rows[0]
    times = engine.query(f"SELECT ID, ROWTIME{', WINDOWSTART' if windowed else ''} FROM {table};")
    return {(r["ID"], r.get("WINDOWSTART")): r["ROWTIME"] for r in times}


@pytest.mark.parametrize("window", list(WINDOWS))
def test_a_late_record_keeps_the_newest_time(engine: Engine, window: str) -> None:
    engine.execute(
        f"CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s {WINDOWS[window]} GROUP BY id;"
    )
    for ts in (12345, 12211):  # the second is late: one window, one session
        engine.insert("s", {"ID": "a", "V": 1}, timestamp=ts)
        engine.drain()
    times = _row_times(engine, "t")
    assert times
    assert set(times.values()) == {12345}
    assert {r["N"] for r in engine.query("SELECT n FROM t;")} == {2}


def test_a_batch_of_late_records_keeps_the_newest_time(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s WINDOW TUMBLING (SIZE 1 SECOND) "
        "GROUP BY id;"
    )
    for ts in (12345, 12211, 12001, 13500, 12100):  # one batch: the fast path runs it
        engine.insert("s", {"ID": "a", "V": 1}, timestamp=ts)
    engine.drain()
    assert _row_times(engine, "t") == {("a", 12000): 12345, ("a", 13000): 13500}


def test_a_table_aggregate_keeps_the_newest_time_it_has_seen(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE src (id STRING PRIMARY KEY, g STRING) WITH (kafka_topic='src', "
        "value_format='JSON', partitions=1);"
    )
    engine.execute("CREATE TABLE t AS SELECT g AS id, COUNT(*) AS n FROM src GROUP BY g;")
    engine.insert("src", {"ID": "x", "G": "a"}, timestamp=500)
    engine.insert("src", {"ID": "y", "G": "a"}, timestamp=300)
    engine.insert("src", {"ID": "x", "G": "b"}, timestamp=400)  # leaves a: a's time is 500
    engine.drain()
    assert _row_times(engine, "t") == {("a", None): 500, ("b", None): 400}
    assert sorted((r["ID"], r["N"]) for r in engine.query("SELECT * FROM t;")) == [
        ("a", 1),
        ("b", 1),
    ]
