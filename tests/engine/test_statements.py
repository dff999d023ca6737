"""The statements around queries: types, properties, PRINT, EXPLAIN, TERMINATE, INSERT INTO."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        tmp_path / "data", fsync="never", properties={"ksql.streams.cache.max.bytes.buffering": "0"}
    )
    e.execute(
        "CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', "
        "value_format='JSON', partitions=1);"
    )
    yield e
    e.close()


def test_create_and_drop_type(engine: Engine) -> None:
    engine.execute("CREATE TYPE address AS STRUCT<street STRING, city STRING>;")
    engine.execute(
        "CREATE STREAM people (name STRING KEY, home ADDRESS) WITH "
        "(kafka_topic='people', value_format='JSON', partitions=1);"
    )
    assert str(engine.catalog.sources["PEOPLE"].value_columns[0].type) == (
        "STRUCT<`STREET` STRING, `CITY` STRING>"
    )
    assert engine.execute("SHOW TYPES;")[0].rows == [
        {"name": "ADDRESS", "type": "STRUCT<`STREET` STRING, `CITY` STRING>"}
    ]
    engine.execute("DROP TYPE address;")
    with pytest.raises(SqlError, match="unknown type ADDRESS"):
        engine.execute(
            "CREATE STREAM p2 (a ADDRESS) WITH (kafka_topic='p2', value_format='JSON', "
            "partitions=1);"
        )


def test_set_and_unset_properties(engine: Engine) -> None:
    engine.execute("SET 'auto.offset.reset'='latest';")
    props = {r["name"]: r["value"] for r in engine.execute("SHOW PROPERTIES;")[0].rows}
    assert props["auto.offset.reset"] == "latest"
    engine.execute("UNSET 'auto.offset.reset';")
    props = {r["name"]: r["value"] for r in engine.execute("SHOW PROPERTIES;")[0].rows}
    assert "auto.offset.reset" not in props


def test_print_shows_a_topics_records(engine: Engine) -> None:
    for v in range(3):
        engine.insert("s", {"K": "a", "V": v}, timestamp=v)
    rows = engine.execute("PRINT 's' FROM BEGINNING LIMIT 2;")[0].rows
    assert [json.loads(r["value"]) for r in rows] == [{"V": 0}, {"V": 1}]
    with pytest.raises(HispeedError, match="Could not find topic 'nope'"):
        engine.execute("PRINT 'nope';")


def test_explain_and_terminate(engine: Engine) -> None:
    engine.execute("CREATE STREAM t AS SELECT k, v + 1 AS w FROM s;")
    plan = engine.execute("EXPLAIN SELECT k, v FROM s WHERE v > 1 EMIT CHANGES;")[0].message
    assert "filter: WHERE" in plan
    assert engine.execute("EXPLAIN CSAS_T_0;")[0].message.startswith("CREATE STREAM t AS")
    engine.execute("TERMINATE CSAS_T_0;")
    assert engine.execute("SHOW QUERIES;")[0].rows == []
    with pytest.raises(HispeedError, match="Unknown queryId"):
        engine.execute("TERMINATE CSAS_T_0;")
    engine.execute("DROP STREAM t;")


def test_insert_into_from_several_queries(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM other (k STRING KEY, v INT) WITH (kafka_topic='other', "
        "value_format='JSON', partitions=1);"
    )
    engine.execute("CREATE STREAM merged AS SELECT * FROM s;")
    engine.execute("INSERT INTO merged SELECT * FROM other;")
    engine.insert("s", {"K": "a", "V": 1})
    engine.insert("other", {"K": "b", "V": 2})
    engine.drain()
    values = sorted(
        json.loads(r["value"])["V"] for r in engine.log.read_table("MERGED", 0).to_pylist()
    )
    assert values == [1, 2]
    with pytest.raises(HispeedError, match="Incompatible schema"):
        engine.execute("INSERT INTO merged SELECT k, v * 1.5 AS v FROM other;")


def test_create_or_replace_keeps_the_name(engine: Engine) -> None:
    engine.execute(
        "CREATE OR REPLACE STREAM s (k STRING KEY, v INT, extra STRING) WITH "
        "(kafka_topic='s', value_format='JSON', partitions=1);"
    )
    assert [c.name for c in engine.catalog.sources["S"].value_columns] == ["V", "EXTRA"]


def test_timestamp_column_with_a_format(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM ev (k STRING KEY, at STRING) WITH (kafka_topic='ev', "
        "value_format='JSON', partitions=1, timestamp='at', "
        "timestamp_format='yyyy-MM-dd HH:mm:ss');"
    )
    engine.execute(
        "CREATE STREAM stamped AS SELECT k, ROWTIME AS rt, ROWPARTITION AS p, "
        "ROWOFFSET AS o FROM ev;"
    )
    engine.log.append("ev", [(b"a", b'{"AT": "2024-01-02 03:04:05"}'), (b"b", b'{"AT": "bad"}')])
    engine.drain()
    rows = engine.log.read_table("STAMPED", 0).to_pylist()
    assert len(rows) == 1  # the record without a valid time went to the processing log
    assert json.loads(rows[0]["value"]) == {"RT": 1704164645000, "P": 0, "O": 0}
    assert rows[0]["timestamp"] == 1704164645000


@pytest.mark.parametrize(
    ("select", "column"),
    [
        ("CREATE STREAM o AS SELECT k, v, v FROM s;", "`V` INTEGER"),
        ("CREATE STREAM o AS SELECT k, CAST(v AS STRING) AS k FROM s;", "`K` STRING"),
        ("CREATE TABLE o AS SELECT k, COUNT(*) AS k FROM s GROUP BY k;", "`K` BIGINT"),
    ],
)
def test_a_duplicate_column_is_named_with_its_type(
    engine: Engine, select: str, column: str
) -> None:
    with pytest.raises(SqlError) as caught:
        engine.execute(select)
    assert f"Duplicate value columns found in schema: {column};" in str(caught.value)


def test_already_exists_says_what_to_do_and_each_way_works(engine: Engine) -> None:
    """A user pasting the course's statements into a server that already runs them (the
    demo) is told how to go on, and each way the message names works."""
    engine.execute("CREATE TABLE t AS SELECT k, COUNT(*) AS n FROM s GROUP BY k;")
    again = "CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON');"
    with pytest.raises(HispeedError) as refused:
        engine.execute(again)
    message = str(refused.value)
    assert message.startswith(
        "Cannot add stream 'S': A stream with the same name already exists. "
    )  # ksqlDB's words first: clients match on them
    [query] = engine.catalog.readers_of("S")
    for advice in (
        "DESCRIBE S",
        "CREATE STREAM IF NOT EXISTS",
        "another name",
        f"TERMINATE {query.id} (the queries using it), then DROP STREAM S first",
        "CREATE OR REPLACE STREAM S",
    ):
        assert advice in message
    with pytest.raises(HispeedError) as refused:
        engine.execute("CREATE TABLE t AS SELECT k, COUNT(*) AS n FROM s GROUP BY k;")
    assert "DROP TABLE T first; or write CREATE OR REPLACE TABLE T" in str(refused.value)
    with pytest.raises(HispeedError) as refused:  # another kind: no OR REPLACE to offer
        engine.execute("CREATE TABLE s (k STRING PRIMARY KEY, v INT) WITH (kafka_topic='s');")
    assert "A stream with the same name" in str(refused.value)
    assert "OR REPLACE" not in str(refused.value)
    engine.execute(again.replace("STREAM s", "STREAM IF NOT EXISTS s"))
    engine.execute(again.replace("STREAM s", "OR REPLACE STREAM s"))
    engine.execute(again.replace("STREAM s", "STREAM s2"))
    engine.execute(f"TERMINATE {query.id};")
    engine.execute("DROP TABLE t;")
    engine.execute("DROP STREAM s;")
    engine.execute(again)


def test_print_shows_every_intervalth_record_up_to_its_limit(engine: Engine) -> None:
    """ksqlDB's PRINT ... INTERVAL n: every n-th record from the first; LIMIT counts the
    records shown."""
    for v in range(10):
        engine.insert("s", {"K": "a", "V": v}, timestamp=v)
    values = [
        json.loads(r["value"])["V"]
        for r in engine.execute("PRINT 's' FROM BEGINNING INTERVAL 3;")[0].rows
    ]
    assert values == [0, 3, 6, 9]
    rows = engine.execute("PRINT 's' FROM BEGINNING INTERVAL 4 LIMIT 2;")[0].rows
    assert [json.loads(r["value"])["V"] for r in rows] == [0, 4]
    with pytest.raises(SqlError, match="INTERVAL must be 1 or more"):
        engine.execute("PRINT 's' FROM BEGINNING INTERVAL 0;")


def test_print_answered_whole_stops_at_its_setting_and_says_so(tmp_path: Path) -> None:
    with Engine(tmp_path, fsync="never", properties={"print.max.records": 5}) as engine:
        engine.execute(
            "CREATE STREAM s (k STRING KEY, v INT) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=2);"
        )
        engine.insert_many("s", [{"K": str(v % 3), "V": v} for v in range(40)])
        result = engine.execute("PRINT 's' FROM BEGINNING;")[0]
        assert len(result.rows) == 5
        assert "print_max_records" in result.warnings[0]
        limited = engine.execute("PRINT 's' FROM BEGINNING LIMIT 3;")[0]
        assert (len(limited.rows), limited.warnings) == (3, [])


def test_print_over_a_large_topic_holds_what_it_shows_not_the_topic(engine: Engine) -> None:
    """PRINT ... LIMIT over 30,000 records reads lazily: the Python objects it makes stay a
    small part of what listing the whole topic would make."""
    import tracemalloc

    engine.insert_many("s", [{"K": str(v), "V": v} for v in range(30_000)])
    tracemalloc.start()
    try:
        rows = engine.execute("PRINT 's' FROM BEGINNING LIMIT 10;")[0].rows
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows) == 10
    # the whole topic as dicts is over 10 MB (30,000 of ~400 bytes)
    assert peak < 4 * 1024 * 1024, peak
