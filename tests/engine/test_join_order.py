"""A join follows timestamp order across its inputs when they hold a backlog (issue 16, defect 5).

Kafka Streams (and so ksqlDB) processes next the buffered record with the smallest timestamp
among a task's input partitions. A query made while both topics already hold records must
give what it gives when the same records arrive one at a time in timestamp order.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hispeed.engine import Engine
from hispeed.log.base import Record
from tests.engine.test_joins import out

DDL = (
    "CREATE STREAM clicks (user_id STRING KEY, page STRING) "
    "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
    "CREATE STREAM views (user_id STRING KEY, ms INT) "
    "WITH (kafka_topic='views', value_format='JSON', partitions=1);"
    "CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING) "
    "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
    "CREATE TABLE countries (id STRING PRIMARY KEY, country STRING) "
    "WITH (kafka_topic='countries', value_format='JSON', partitions=1);"
)
PROPERTIES = {"ksql.streams.cache.max.bytes.buffering": "0", "auto.offset.reset": "earliest"}

Row = tuple[str, str, dict[str, Any] | None, int]  # topic, key, value, timestamp


def open_engine(path: Path) -> Engine:
    engine = Engine(path, fsync="never", properties=PROPERTIES)
    engine.execute(DDL)
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = open_engine(tmp_path / "data")
    yield e
    e.close()


def append(engine: Engine, rows: list[Row]) -> None:
    """The records into their topics, none processed yet."""
    for topic, key, value, ts in rows:
        raw = json.dumps(value).encode() if value is not None else None
        engine.log.append(topic, [Record(raw, key, ts)], partition=0)


def test_stream_rows_join_the_table_version_of_their_time(engine: Engine) -> None:
    append(
        engine,
        [
            ("users", "u1", {"NAME": "v1"}, 0),
            ("users", "u1", {"NAME": "v2"}, 2),
            ("clicks", "u1", {"PAGE": "/a"}, 1),
            ("clicks", "u1", {"PAGE": "/b"}, 3),
        ],
    )
    engine.execute(
        "CREATE STREAM enriched AS SELECT c.user_id, page, name FROM clicks c "
        "JOIN users u ON c.user_id = u.user_id;"
    )
    engine.drain()
    assert out(engine, "ENRICHED") == [
        ("u1", {"PAGE": "/a", "NAME": "v1"}, 1),
        ("u1", {"PAGE": "/b", "NAME": "v2"}, 3),
    ]


def test_stream_stream_backlog_joins_in_time_order(engine: Engine) -> None:
    append(
        engine,
        [
            ("clicks", "u1", {"PAGE": "/a"}, 1_000),
            ("clicks", "u1", {"PAGE": "/b"}, 5_000),
            ("views", "u1", {"MS": 7}, 3_000),
        ],
    )
    engine.execute(
        "CREATE STREAM seen AS SELECT c.user_id, page, ms FROM clicks c LEFT JOIN views v "
        "WITHIN 10 SECONDS ON c.user_id = v.user_id;"
    )
    engine.drain()
    # /a came before any view: sent unmatched at once (no GRACE PERIOD), then matched
    assert out(engine, "SEEN") == [
        ("u1", {"PAGE": "/a", "MS": None}, 1_000),
        ("u1", {"PAGE": "/a", "MS": 7}, 3_000),
        ("u1", {"PAGE": "/b", "MS": 7}, 5_000),
    ]


def test_table_table_backlog_joins_in_time_order(engine: Engine) -> None:
    append(
        engine,
        [
            ("users", "k", {"NAME": "a1"}, 1),
            ("users", "k", {"NAME": "a2"}, 3),
            ("countries", "k", {"COUNTRY": "b1"}, 2),
            ("countries", "k", {"COUNTRY": "b2"}, 4),
        ],
    )
    engine.execute(
        "CREATE TABLE named AS SELECT u.user_id, name, country FROM users u "
        "JOIN countries c ON u.user_id = c.id;"
    )
    engine.drain()
    assert out(engine, "NAMED") == [
        ("k", {"NAME": "a1", "COUNTRY": "b1"}, 2),
        ("k", {"NAME": "a2", "COUNTRY": "b1"}, 3),
        ("k", {"NAME": "a2", "COUNTRY": "b2"}, 4),
    ]


@st.composite
def backlogs(draw: Any) -> list[Row]:
    """Stream and table records of a few keys, each topic's in the order of their times."""
    keys = st.sampled_from(["a", "b"])
    times = st.lists(st.integers(0, 6), max_size=6).map(sorted)
    clicks = draw(times)
    users = draw(times)
    rows: list[Row] = [("clicks", draw(keys), {"PAGE": f"/{i}"}, t) for i, t in enumerate(clicks)]
    rows += [
        ("users", draw(keys), None if draw(st.booleans()) else {"NAME": f"n{i}"}, t)
        for i, t in enumerate(users)
    ]
    return rows


JOIN = (
    "CREATE STREAM j AS SELECT c.user_id, page, name FROM clicks c "
    "LEFT JOIN users u ON c.user_id = u.user_id;"
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backlogs())
def test_a_backlog_joins_as_records_one_at_a_time_in_time_order(rows: list[Row]) -> None:
    """The join's output over a backlog equals its output when the same records arrive one
    at a time in timestamp order (on equal times the table's change first)."""
    with tempfile.TemporaryDirectory() as tmp:
        backlog = open_engine(Path(tmp) / "backlog")
        one_by_one = open_engine(Path(tmp) / "one")
        try:
            append(backlog, rows)
            backlog.execute(JOIN)
            backlog.drain()
            one_by_one.execute(JOIN)
            for i in sorted(range(len(rows)), key=lambda i: (rows[i][3], rows[i][0] != "users")):
                append(one_by_one, [rows[i]])
                one_by_one.drain()
            assert out(backlog, "J") == out(one_by_one, "J")
        finally:
            backlog.close()
            one_by_one.close()
