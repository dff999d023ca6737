"""An engine with streams and tables of clicks, users, orders and countries, and a way to
read what a sink's topic holds (the records as bytes, to compare a SQL query's output with
its Python twin's record for record)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine

SOURCES = [
    "CREATE STREAM clicks (user_id STRING KEY, status INT, ms DOUBLE, page STRING, "
    "tags ARRAY<STRING>) WITH (kafka_topic='clicks', value_format='JSON', partitions=2);",
    "CREATE TABLE users (id STRING PRIMARY KEY, name STRING, country STRING) "
    "WITH (kafka_topic='users', value_format='JSON', partitions=2);",
    "CREATE TABLE scores (id STRING PRIMARY KEY, score INT) "
    "WITH (kafka_topic='scores', value_format='JSON', partitions=2);",
    "CREATE TABLE countries (code STRING PRIMARY KEY, continent STRING) "
    "WITH (kafka_topic='countries', value_format='JSON', partitions=1);",
    "CREATE STREAM orders (order_id STRING KEY, user_id STRING, amount DOUBLE) "
    "WITH (kafka_topic='orders', value_format='JSON', partitions=2);",
    "CREATE STREAM payments (order_id STRING KEY, paid DOUBLE) "
    "WITH (kafka_topic='payments', value_format='JSON', partitions=2);",
]

USERS = ["u1", "u2", "u3", "u4"]


def load(engine: Engine) -> None:
    """The same inputs for every test: tables first, then events over 70 s of event time."""
    engine.insert_many(
        "countries",
        [
            {"CODE": "fr", "CONTINENT": "Europe", "ROWTIME": 1},
            {"CODE": "jp", "CONTINENT": "Asia", "ROWTIME": 1},
        ],
    )
    engine.insert_many(
        "users",
        [
            {"ID": u, "NAME": f"name-{u}", "COUNTRY": ["fr", "jp"][i % 2], "ROWTIME": 2}
            for i, u in enumerate(USERS)
        ],
    )
    engine.insert_many(
        "scores", [{"ID": u, "SCORE": 10 * i, "ROWTIME": 3} for i, u in enumerate(USERS[:3])]
    )
    clicks = []
    for i in range(120):
        clicks.append(
            {
                "USER_ID": USERS[i % 4] if i % 11 else None,
                "STATUS": 200 if i % 5 else 404,
                "MS": float(i % 17) * 1.5,
                "PAGE": f"/p{i % 6}",
                "TAGS": [f"t{i % 3}", f"t{i % 4}"] if i % 7 else [],
                "ROWTIME": 1000 + i * 600,
            }
        )
    engine.insert_many("clicks", clicks)
    engine.insert_many(
        "orders",
        [
            {"ORDER_ID": f"o{i}", "USER_ID": USERS[i % 4], "AMOUNT": i * 2.5, "ROWTIME": 5000 * i}
            for i in range(12)
        ],
    )
    engine.insert_many(
        "payments",
        [
            {"ORDER_ID": f"o{i}", "PAID": i * 2.5, "ROWTIME": 5000 * i + (i % 3) * 4000}
            for i in range(0, 12, 2)
        ],
    )
    # a change to a table after the events: table joins send the update on
    engine.insert_many("users", [{"ID": "u2", "NAME": "renamed", "COUNTRY": "jp", "ROWTIME": 9}])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    for sql in SOURCES:
        e.execute(sql)
    yield e
    e.close()


def records(engine: Engine, name: str) -> list[tuple[Any, ...]]:
    """Every record of a source's topic: (partition, key bytes, value bytes, timestamp), in
    each partition's order; records without a key (which the producer spreads over the
    partitions as it likes) last, without their partition, in time order."""
    src = engine.catalog.sources[name.upper()]
    out = []
    for p in range(len(engine.log.describe_topic(src.topic).partitions)):
        start, _ = engine.log.offsets(src.topic, p)
        for batch in engine.log.read(src.topic, p, start):
            for r in batch.to_pylist():
                out.append((p, r["key"], r["value"], r["timestamp"]))
    keyless = sorted(
        ((None, None, v, t) for p, k, v, t in out if k is None), key=lambda r: (r[3], r[2] or b"")
    )
    return [r for r in out if r[1] is not None] + keyless


def schema(engine: Engine, name: str) -> tuple[Any, ...]:
    """A source's kind, columns, formats and window."""
    s = engine.catalog.sources[name.upper()]
    return (s.kind, s.key_columns, s.value_columns, s.key_format, s.value_format, s.window)
