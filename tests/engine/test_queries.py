"""The Python API's pull queries (`query`) and push queries (`stream`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        tmp_path / "data", fsync="never", properties={"ksql.streams.cache.max.bytes.buffering": "0"}
    )
    e.execute(
        "CREATE STREAM readings (id STRING KEY, x DOUBLE) WITH (kafka_topic='readings', "
        "value_format='JSON', partitions=2);"
    )
    e.execute(
        "CREATE TABLE peaks AS SELECT id, MAX(x) AS peak, COUNT(*) AS n FROM readings GROUP BY id;"
    )
    yield e
    e.close()


def test_pull_query_on_a_table_gives_the_current_row_per_key(engine: Engine) -> None:
    for device, x in [("d1", 1.0), ("d2", 5.0), ("d1", 3.0)]:
        engine.insert("readings", {"ID": device, "X": x})
    engine.drain()
    rows = engine.query("SELECT * FROM peaks;")
    assert sorted(rows, key=lambda r: r["ID"]) == [
        {"ID": "d1", "PEAK": 3.0, "N": 2},
        {"ID": "d2", "PEAK": 5.0, "N": 1},
    ]
    assert engine.query("SELECT peak FROM peaks WHERE id = 'd2';") == [{"PEAK": 5.0}]
    assert len(engine.query("SELECT * FROM peaks LIMIT 1;")) == 1


def test_pull_query_on_a_stream_scans_what_it_holds(engine: Engine) -> None:
    for x in [1.0, 2.0, 3.0]:
        engine.insert("readings", {"ID": "d", "X": x})
    rows = engine.query("SELECT x * 10 AS big FROM readings WHERE x > 1;")
    assert sorted(r["BIG"] for r in rows) == [20.0, 30.0]


def test_pull_query_as_dataframes(engine: Engine) -> None:
    engine.insert("readings", {"ID": "d", "X": 1.0})
    engine.drain()
    frame = engine.query("SELECT * FROM peaks;", format="polars")
    assert frame.columns == ["ID", "PEAK", "N"]
    assert frame.height == 1
    assert engine.query("SELECT * FROM peaks;", format="pandas").shape == (1, 3)


def test_pull_query_errors(engine: Engine) -> None:
    with pytest.raises(HispeedError, match="don't support GROUP BY"):
        engine.query("SELECT id, COUNT(*) FROM readings GROUP BY id;")
    with pytest.raises(HispeedError, match=r"Engine\.stream"):
        engine.query("SELECT * FROM readings EMIT CHANGES;")


def test_push_query_delivers_rows_as_they_happen(engine: Engine) -> None:
    engine.insert("readings", {"ID": "old", "X": 9.0})
    with engine.stream("SELECT id, x FROM readings WHERE x > 1 EMIT CHANGES;") as q:
        assert q.poll(0.2) == []  # from now on: the old record is not replayed
        engine.insert("readings", {"ID": "d1", "X": 0.5})
        engine.insert("readings", {"ID": "d1", "X": 2.5})
        rows = q.poll(2.0)
    assert rows == [{"ID": "d1", "X": 2.5}]


def test_push_query_with_aggregation_window_and_limit(engine: Engine) -> None:
    q = engine.stream(
        "SELECT id, COUNT(*) AS n FROM readings WINDOW TUMBLING (SIZE 10 SECONDS) "
        "GROUP BY id EMIT CHANGES LIMIT 3;",
        from_beginning=True,
    )
    for ts in [1000, 2000, 15000, 16000]:
        engine.insert("readings", {"ID": "d", "X": 1.0}, timestamp=ts)
    rows = list(q)
    assert [r["N"] for r in rows] == [1, 2, 1]
    assert q.closed
    assert not [t for t in engine.log.list_topics(internal=True) if "transient" in t]


def test_push_query_may_aggregate_a_whole_stream_without_its_key(engine: Engine) -> None:
    total = engine.stream("SELECT COUNT(*) AS n FROM readings EMIT CHANGES LIMIT 2;")
    per_device = engine.stream(
        "SELECT MAX(x) AS top FROM readings GROUP BY id EMIT CHANGES LIMIT 2;"
    )
    engine.insert("readings", {"ID": "a", "X": 1.0})
    engine.insert("readings", {"ID": "b", "X": 5.0})
    assert [r["N"] for r in total] == [1, 2]
    assert [r["TOP"] for r in per_device] == [1.0, 5.0]


def test_push_query_as_an_async_iterator(engine: Engine) -> None:
    async def collect() -> list[dict[str, object]]:
        q = engine.stream("SELECT id FROM readings EMIT CHANGES LIMIT 2;", from_beginning=True)
        return [row async for row in q]

    engine.insert("readings", {"ID": "a", "X": 1.0})
    engine.insert("readings", {"ID": "b", "X": 1.0})
    assert sorted(r["ID"] for r in asyncio.run(collect())) == ["a", "b"]


def test_the_engine_runs_queries_in_the_background(engine: Engine) -> None:
    engine.start()
    with engine.stream("SELECT id, x FROM readings EMIT CHANGES;") as q:
        engine.insert("readings", {"ID": "z", "X": 4.0})
        rows = []
        for _ in range(40):
            rows += q.poll(0.1)
            if rows:
                break
    assert rows == [{"ID": "z", "X": 4.0}]


def test_many_subscribers_share_one_reader_of_the_stream(engine: Engine) -> None:
    feeds = engine.runtime.feeds.feeds
    queries = [
        engine.stream(f"SELECT id, x FROM readings WHERE x > {i} EMIT CHANGES;") for i in range(50)
    ]
    assert len(feeds) == 1  # one reader for the fifty
    feed = next(iter(feeds.values()))
    assert len(feed.subscribers) == 50
    for x in [0.5, 10.5, 30.5]:
        engine.insert("readings", {"ID": "d", "X": x})
    got = [[r["X"] for r in q.poll(0.05)] for q in queries]
    assert got[0] == [0.5, 10.5, 30.5]
    assert got[20] == [30.5]
    assert got[40] == []
    for q in queries:
        q.close()
    assert not feeds  # the last one to leave closes the reader


def test_a_subscriber_from_the_beginning_does_not_join_a_reader_past_it(engine: Engine) -> None:
    engine.insert("readings", {"ID": "a", "X": 1.0})
    first = engine.stream("SELECT id FROM readings EMIT CHANGES;", from_beginning=True)
    assert [r["ID"] for r in first.poll(0.5)] == ["a"]
    engine.insert("readings", {"ID": "b", "X": 1.0})
    second = engine.stream("SELECT id FROM readings EMIT CHANGES LIMIT 2;", from_beginning=True)
    assert [r["ID"] for r in list(second)] == ["a", "b"]
    assert second.closed
    assert [r["ID"] for r in first.poll(0.5)] == ["b"]
    first.close()


def test_push_query_on_a_table_delivers_deletes_as_null_rows(tmp_path: Path) -> None:
    with Engine(tmp_path / "t", fsync="never") as e:
        e.execute(
            "CREATE TABLE t (k INT PRIMARY KEY, v INT) WITH (kafka_topic='t', "
            "value_format='JSON', partitions=1);"
        )
        e.log.append("t", [(b"\x00\x00\x00\x01", b'{"V": 5}'), (b"\x00\x00\x00\x01", None)])
        with e.stream("SELECT k, v FROM t EMIT CHANGES LIMIT 2;", from_beginning=True) as q:
            rows = list(q)
    assert rows == [{"K": 1, "V": 5}, {"K": 1, "V": None}]
