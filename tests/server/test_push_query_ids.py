"""A push query's id in its header, as ksqlDB gives it.

From ksqlDB's ScalablePushUtil.isScalablePushQuery and PushPhysicalPlanBuilder: with
`ksql.query.push.v2.enabled` on, a push query over one source written by exactly one
persistent query, reading from latest, EMIT CHANGES, without GROUP BY, WINDOW, HAVING or
PARTITION BY and without ROWPARTITION/ROWOFFSET, is a scalable push query, its id
`SCALABLE_PUSH_QUERY_` and a UUID; any other push query is transient (`transient_<SOURCE>_...`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.server.streaming import QuerySession, TombstoneRow
from hispeed.testing.wait import wait_for

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
V2 = {"ksql.query.push.v2.enabled": True}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    e.execute(
        "CREATE STREAM i (k STRING KEY, id INT) WITH (kafka_topic='i', value_format='JSON', "
        "partitions=1);"
        "CREATE STREAM s AS SELECT * FROM i;"
        "CREATE STREAM other (k STRING KEY, v INT) WITH (kafka_topic='o', value_format='JSON', "
        "partitions=1);"
        "CREATE STREAM j AS SELECT * FROM other;"
    )
    yield e
    e.close()


def header_id(engine: Engine, sql: str, properties: dict[str, Any]) -> str:
    session = QuerySession(engine, sql, properties)
    try:
        return str(session.header.query_id)
    finally:
        session.close()


def test_a_push_query_over_a_query_written_stream_is_scalable_with_push_v2(
    engine: Engine,
) -> None:
    query_id = header_id(engine, "SELECT k, id FROM s EMIT CHANGES;", V2)
    assert re.fullmatch(f"SCALABLE_PUSH_QUERY_{UUID}", query_id), query_id
    # latest named in the request, with or without ksql.streams.
    for reset in ("auto.offset.reset", "ksql.streams.auto.offset.reset"):
        query_id = header_id(engine, "SELECT * FROM s EMIT CHANGES;", {**V2, reset: "latest"})
        assert query_id.startswith("SCALABLE_PUSH_QUERY_")


@pytest.mark.parametrize(
    ("sql", "properties"),
    [
        ("SELECT k, id FROM s EMIT CHANGES;", {}),  # push v2 off (its default)
        ("SELECT k, id FROM s EMIT CHANGES;", {**V2, "auto.offset.reset": "earliest"}),
        ("SELECT k, id FROM i EMIT CHANGES;", V2),  # no query writes I
        ("SELECT k, COUNT(*) AS n FROM s GROUP BY k EMIT CHANGES;", V2),
        ("SELECT k, id FROM s PARTITION BY id EMIT CHANGES;", V2),
        ("SELECT k, ROWOFFSET AS o FROM s EMIT CHANGES;", V2),
        ("SELECT k, id FROM s WHERE ROWPARTITION = 0 EMIT CHANGES;", V2),
        ("SELECT s.k, id, v FROM s JOIN j WITHIN 1 MINUTE ON s.k = j.k EMIT CHANGES;", V2),
    ],
)
def test_other_push_queries_are_transient(
    engine: Engine, sql: str, properties: dict[str, Any]
) -> None:
    query_id = header_id(engine, sql, properties)
    assert query_id.startswith("transient_"), query_id


def test_a_second_writer_makes_it_transient(engine: Engine) -> None:
    engine.execute("INSERT INTO s SELECT * FROM i;")
    assert header_id(engine, "SELECT * FROM s EMIT CHANGES;", V2).startswith("transient_")


def rows_until_done(session: QuerySession) -> list[list[Any]]:
    """Every row of a session with a LIMIT, polled until the LIMIT ends it."""
    rows: list[list[Any]] = []

    def done() -> bool:
        rows.extend(session.poll(0.05))
        return session.closed

    try:
        wait_for(done, timeout=30)
    finally:
        session.close()
    return rows


def test_a_scalable_push_query_skips_records_without_a_key_and_deletions(
    engine: Engine,
) -> None:
    """As ksqlDB's ScalablePushConsumer.handleRow: a record without a key (of a source with
    key columns) or without a value is not handed on, and counts for no LIMIT; a transient
    push query hands both on (a table's deletion as a tombstone row)."""
    engine.execute(
        "CREATE TABLE tin (k STRING PRIMARY KEY, v INT) WITH (kafka_topic='tin', "
        "value_format='JSON', partitions=1);"
        "CREATE TABLE t AS SELECT * FROM tin;"
    )
    scalable = QuerySession(engine, "SELECT * FROM s EMIT CHANGES LIMIT 2;", V2)
    transient = QuerySession(engine, "SELECT * FROM s EMIT CHANGES LIMIT 2;", {})
    assert scalable.header.query_id.startswith("SCALABLE_PUSH_QUERY_")
    engine.log.append("i", [(None, b'{"ID": 1}'), (b"a", b'{"ID": 2}'), (b"b", b'{"ID": 3}')])
    assert rows_until_done(scalable) == [["a", 2], ["b", 3]]
    assert rows_until_done(transient) == [[None, 1], ["a", 2]]

    scalable = QuerySession(engine, "SELECT * FROM t EMIT CHANGES LIMIT 2;", V2)
    transient = QuerySession(engine, "SELECT * FROM t EMIT CHANGES LIMIT 3;", {})
    engine.log.append("tin", [(b"x", b'{"V": 1}'), (b"x", None), (b"y", b'{"V": 2}')])
    assert rows_until_done(scalable) == [["x", 1], ["y", 2]]
    got = rows_until_done(transient)
    assert got == [["x", 1], ["x", None], ["y", 2]]
    assert isinstance(got[1], TombstoneRow)
