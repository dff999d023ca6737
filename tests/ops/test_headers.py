"""A query's outputs carry the headers of the input record that caused them, as ksqlDB's do
(Kafka Streams forwards the current record's headers to the sink): a projection's the record's
own, an aggregation's the record that changed the row (EMIT FINAL: the window's last), a
join's the record whose processing sent the joined row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.log.base import Record

PER_RECORD = {"ksql.streams.cache.max.bytes.buffering": "0"}
J = "value_format='JSON', partitions=1"


@pytest.fixture
def open_engine(tmp_path: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(properties: dict[str, str] | None = None) -> Engine:
        e = Engine(
            tmp_path / "data",
            fsync="never",
            properties=PER_RECORD if properties is None else properties,
        )
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.close()


def put(engine: Engine, topic: str, key: str, value: str | None, ts: int, **headers: str) -> None:
    """Append one record with headers name=value (none: a record without headers)."""
    pairs = [(k, v.encode()) for k, v in headers.items()]
    engine.log.append(topic, [Record(value, key, ts, pairs)])


def outputs(engine: Engine, topic: str) -> list[tuple[Any, ...]]:
    """(key, value, headers as [(name, value)] or None) of a topic's records, oldest first."""
    rows = []
    for p in range(len(engine.log.describe_topic(topic).partitions)):
        for batch in engine.log.read(topic, p, 0):
            for r in batch.to_pylist():
                hs = r["headers"]
                headers = [(h["key"], h["value"]) for h in hs] if hs else None
                rows.append((r["timestamp"], r["key"], r["value"], headers))
    return [row[1:] for row in sorted(rows, key=lambda row: row[0])]


def test_a_projection_and_filter_keep_each_records_headers(open_engine: Any) -> None:
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', {J});"
        "CREATE STREAM big AS SELECT k, v * 10 AS v10 FROM s WHERE v > 1;"
    )
    put(engine, "s", "a", '{"V": 1}', 1, trace="t1")  # filtered out
    put(engine, "s", "b", '{"V": 2}', 2, trace="t2", source="lab")
    put(engine, "s", "c", '{"V": 3}', 3)  # no headers
    engine.drain()
    assert outputs(engine, "BIG") == [
        (b"b", b'{"V10":20}', [("trace", b"t2"), ("source", b"lab")]),
        (b"c", b'{"V10":30}', None),
    ]


def test_a_query_of_records_without_headers_writes_none(open_engine: Any) -> None:
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', {J});"
        "CREATE STREAM copy AS SELECT * FROM s;"
        "CREATE TABLE counts AS SELECT k, COUNT(*) AS n FROM s GROUP BY k;"
    )
    put(engine, "s", "a", '{"V": 1}', 1)
    engine.drain()
    assert outputs(engine, "COPY") == [(b"a", b'{"V":1}', None)]
    assert outputs(engine, "COUNTS") == [(b"a", b'{"N":1}', None)]


def test_an_exploded_record_gives_its_headers_to_every_row(open_engine: Any) -> None:
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM s (k STRING KEY, xs ARRAY<INT>) WITH (kafka_topic='s', {J});"
        "CREATE STREAM flat AS SELECT k, EXPLODE(xs) AS x FROM s;"
    )
    put(engine, "s", "a", '{"XS": [1, 2]}', 1, h="1")
    engine.drain()
    assert outputs(engine, "FLAT") == [
        (b"a", b'{"X":1}', [("h", b"1")]),
        (b"a", b'{"X":2}', [("h", b"1")]),
    ]


@pytest.mark.parametrize(
    "window", ["", "WINDOW TUMBLING (SIZE 10 MILLISECONDS)", "WINDOW SESSION (5 MILLISECONDS)"]
)
@pytest.mark.parametrize("properties", [PER_RECORD, {}], ids=["per-record", "coalesced"])
def test_an_aggregations_row_carries_the_headers_of_the_record_that_changed_it(
    open_engine: Any, window: str, properties: dict[str, str]
) -> None:
    """Kafka Streams' aggregate forwards each change with the current record's headers; its
    record cache (on: one change per key and batch) keeps the last record's."""
    engine = open_engine(properties)
    engine.execute(
        f"CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', {J});"
        f"CREATE TABLE totals AS SELECT k, SUM(v) AS total FROM s {window} GROUP BY k;"
    )
    put(engine, "s", "a", '{"V": 1}', 1, n="1")
    put(engine, "s", "b", '{"V": 2}', 2)
    put(engine, "s", "a", '{"V": 3}', 3, n="3")
    engine.drain()
    got = [(k[:1], v, h) for k, v, h in outputs(engine, "TOTALS")]
    # the second record of a extends its session: the old session's deletion is its change too
    merged = [(b"a", None, [("n", b"3")])] if "SESSION" in window else []
    if properties:
        assert got == [
            (b"a", b'{"TOTAL":1}', [("n", b"1")]),
            *merged,
            (b"b", b'{"TOTAL":2}', None),
            (b"a", b'{"TOTAL":4}', [("n", b"3")]),
        ]
    else:  # one poll: each key's last change
        assert got == [*merged, (b"b", b'{"TOTAL":2}', None), (b"a", b'{"TOTAL":4}', [("n", b"3")])]


def test_a_table_aggregations_changes_carry_the_updating_records_headers(
    open_engine: Any,
) -> None:
    """A table row moving to another group subtracts from the old and adds to the new: both
    changes carry the headers of the row's new record (ksqlDB's headers.json GROUP BY case)."""
    engine = open_engine()
    engine.execute(
        "CREATE TABLE t (id STRING PRIMARY KEY, g STRING) WITH (kafka_topic='t', "
        f"{J});"
        "CREATE TABLE sizes AS SELECT g, COUNT(*) AS n FROM t GROUP BY g;"
    )
    put(engine, "t", "1", '{"G": "x"}', 1, h="first")
    put(engine, "t", "1", '{"G": "y"}', 2, h="moved")
    engine.drain()
    assert outputs(engine, "SIZES") == [
        (b"x", b'{"N":1}', [("h", b"first")]),
        (b"x", b'{"N":0}', [("h", b"moved")]),
        (b"y", b'{"N":1}', [("h", b"moved")]),
    ]


def test_emit_final_carries_the_headers_of_the_windows_last_record(open_engine: Any) -> None:
    """Kafka Streams' suppression buffer keeps each key's last record context and forwards
    the final row with it, whichever record closes the window."""
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', {J});"
        "CREATE TABLE totals AS SELECT k, SUM(v) AS total FROM s "
        "WINDOW TUMBLING (SIZE 10 MILLISECONDS, GRACE PERIOD 0 MILLISECONDS) "
        "GROUP BY k EMIT FINAL;"
    )
    put(engine, "s", "a", '{"V": 1}', 1, n="1")
    put(engine, "s", "a", '{"V": 2}', 2, n="2")
    put(engine, "s", "b", '{"V": 5}', 3)
    engine.drain()
    engine.close()
    engine = open_engine()  # the headers waiting in an open window survive a restart
    # at 10 (not much later: the window store would no longer hold [0, 10), see
    # test_emit_final_leaves_out_a_window_its_store_no_longer_holds)
    put(engine, "s", "c", '{"V": 9}', 10, n="closer")
    engine.drain()
    got = [(k[:1], v, h) for k, v, h in outputs(engine, "TOTALS")]
    assert sorted(got, key=lambda r: r[0]) == [
        (b"a", b'{"TOTAL":3}', [("n", b"2")]),
        (b"b", b'{"TOTAL":5}', None),
    ]


def test_a_stream_table_join_carries_the_stream_records_headers(open_engine: Any) -> None:
    engine = open_engine()
    engine.execute(
        "CREATE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='users', "
        f"{J});"
        "CREATE STREAM clicks (id STRING KEY, page STRING) WITH (kafka_topic='clicks', "
        f"{J});"
        "CREATE STREAM named AS SELECT c.id, page, name FROM clicks c "
        "LEFT JOIN users u ON c.id = u.id;"
    )
    put(engine, "users", "u1", '{"NAME": "ann"}', 1, side="table")
    engine.drain()
    put(engine, "clicks", "u1", '{"PAGE": "/a"}', 2, side="stream", n="1")
    put(engine, "clicks", "u2", '{"PAGE": "/b"}', 3)
    engine.drain()
    assert outputs(engine, "NAMED") == [
        (b"u1", b'{"PAGE":"/a","NAME":"ann"}', [("side", b"stream"), ("n", b"1")]),
        (b"u2", b'{"PAGE":"/b","NAME":null}', None),
    ]


def test_a_table_table_join_carries_the_changed_rows_headers(open_engine: Any) -> None:
    engine = open_engine()
    engine.execute(
        f"CREATE TABLE l (id STRING PRIMARY KEY, a INT) WITH (kafka_topic='l', {J});"
        f"CREATE TABLE r (id STRING PRIMARY KEY, b INT) WITH (kafka_topic='r', {J});"
        "CREATE TABLE lr AS SELECT l.id, a, b FROM l JOIN r ON l.id = r.id;"
    )
    put(engine, "l", "k", '{"A": 1}', 1, side="left")
    put(engine, "r", "k", '{"B": 2}', 2, side="right")
    engine.drain()
    put(engine, "l", "k", None, 3, side="gone")  # the left row's deletion deletes the join
    engine.drain()
    assert outputs(engine, "LR") == [
        (b"k", b'{"A":1,"B":2}', [("side", b"right")]),
        (b"k", None, [("side", b"gone")]),
    ]


@pytest.mark.parametrize("grace", ["", " GRACE PERIOD 0 MILLISECONDS"])
def test_a_stream_stream_join_carries_the_headers_of_the_record_being_processed(
    open_engine: Any, grace: str
) -> None:
    """A match carries the arriving record's headers; with GRACE PERIOD an unmatched outer row
    carries those of the record whose time closed its window (Kafka Streams' KStreamKStreamJoin
    forwards both with the current record)."""
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM l (id STRING KEY, a INT) WITH (kafka_topic='l', {J});"
        f"CREATE STREAM r (id STRING KEY, b INT) WITH (kafka_topic='r', {J});"
        "CREATE STREAM lr AS SELECT l.id, a, b FROM l LEFT JOIN r "
        f"WITHIN 10 MILLISECONDS{grace} ON l.id = r.id;"
    )
    put(engine, "l", "k", '{"A": 1}', 1, side="left")
    engine.drain()
    put(engine, "r", "k", '{"B": 2}', 2, side="right")
    engine.drain()
    put(engine, "l", "z", '{"A": 3}', 100, side="late")
    engine.drain()
    put(engine, "l", "y", '{"A": 4}', 200, side="closer")
    engine.drain()
    got = outputs(engine, "LR")
    if grace:  # the unmatched z waits for its window, which y's time closes
        assert got == [
            (b"k", b'{"A":1,"B":2}', [("side", b"right")]),
            (b"z", b'{"A":3,"B":null}', [("side", b"closer")]),
        ]
    else:  # old semantics: the unmatched left rows go at once, and match again later
        assert got == [
            (b"k", b'{"A":1,"B":null}', [("side", b"left")]),
            (b"k", b'{"A":1,"B":2}', [("side", b"right")]),
            (b"z", b'{"A":3,"B":null}', [("side", b"late")]),
            (b"y", b'{"A":4,"B":null}', [("side", b"closer")]),
        ]
