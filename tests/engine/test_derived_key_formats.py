"""The key format of a source derived from a keyless (KEY_FORMAT='NONE') one, as ksqlDB picks it.

ksqlDB's rule (LogicalPlanner.getSinkKeyFormat, Analyzer.keyFormatName): the sink inherits
its source's key format unless the WITH clause names one; an inherited NONE gives way to
`ksql.persistence.default.format.key` (KAFKA unless set) once the result has key columns (GROUP
BY, PARTITION BY, a join); a NONE named in the WITH clause with key columns is refused; PARTITION
BY NULL has no key, so NONE, and another format named for it is refused. The key bytes are
decoded here by each format's published rules, not by hispeed's formats. The sink's topic
is named as ksqlDB's TopicCreateInjector names it (ksql.output.topic.name.prefix).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    yield e
    e.close()


def keys(engine: Engine, topic: str) -> list[bytes | None]:
    return [r["key"] for r in engine.log.read_table(topic, 0).to_pylist()]


def key_format(engine: Engine, name: str) -> Any:
    [result] = engine.execute(f"DESCRIBE {name};")
    return result.info["keyFormat"]


KEYLESS = (
    "CREATE STREAM input (foo INT, bar INT) WITH (kafka_topic='input_topic', "
    "key_format='NONE', value_format='JSON', partitions=1);"
)


def test_group_by_over_a_keyless_stream_takes_the_default_key_format(engine: Engine) -> None:
    engine.execute(KEYLESS)
    engine.execute(
        "CREATE TABLE output AS SELECT foo, COUNT() AS count FROM input GROUP BY foo;",
        {"ksql.persistence.default.format.key": "JSON"},
    )
    engine.log.append("input_topic", [(None, b'{"foo": 22}')])
    engine.drain()
    assert key_format(engine, "OUTPUT") == "JSON"
    [raw] = keys(engine, "OUTPUT")
    assert raw is not None
    assert json.loads(raw) == 22


def test_partition_by_over_a_keyless_stream_takes_the_default_key_format(engine: Engine) -> None:
    engine.execute("SET 'ksql.persistence.default.format.key' = 'JSON';")
    engine.execute(KEYLESS)
    engine.execute("CREATE STREAM output AS SELECT * FROM input PARTITION BY bar;")
    engine.log.append("input_topic", [(None, b'{"foo": 10, "bar": 7}')])
    engine.drain()
    assert key_format(engine, "OUTPUT") == "JSON"
    [raw] = keys(engine, "OUTPUT")
    assert raw is not None
    assert json.loads(raw) == 7


def test_a_join_of_keyless_streams_takes_the_default_key_format(engine: Engine) -> None:
    props = {"ksql.persistence.default.format.key": "DELIMITED"}
    engine.execute(
        "CREATE STREAM s1 (id INT, foo INT) WITH (kafka_topic='s1', key_format='NONE', "
        "value_format='JSON', partitions=1);"
        "CREATE STREAM s2 (id INT, val STRING) WITH (kafka_topic='s2', key_format='NONE', "
        "value_format='JSON', partitions=1);",
    )
    engine.execute(
        "CREATE STREAM output AS SELECT s1.id, s2.val FROM s1 LEFT OUTER JOIN s2 "
        "WITHIN 10 SECONDS ON s1.id = s2.id;",
        props,
    )
    engine.log.append("s1", [(None, b'{"ID": 10, "FOO": 22}')])
    engine.drain()
    assert key_format(engine, "OUTPUT") == "DELIMITED"
    assert keys(engine, "OUTPUT") == [b"10"]  # DELIMITED: the number's text


def test_without_the_setting_the_default_key_format_is_kafka(engine: Engine) -> None:
    engine.execute(KEYLESS)
    engine.execute("CREATE TABLE output AS SELECT foo, COUNT() AS count FROM input GROUP BY foo;")
    engine.log.append("input_topic", [(None, b'{"foo": 22}')])
    engine.drain()
    assert key_format(engine, "OUTPUT") == "KAFKA"
    [raw] = keys(engine, "OUTPUT")
    assert raw is not None
    assert struct.unpack(">i", raw) == (22,)


def test_a_key_format_named_in_the_with_clause_wins(engine: Engine) -> None:
    engine.execute(KEYLESS)
    engine.execute(
        "CREATE TABLE output WITH (key_format='DELIMITED') AS "
        "SELECT foo, COUNT() AS count FROM input GROUP BY foo;",
        {"ksql.persistence.default.format.key": "JSON"},
    )
    assert key_format(engine, "OUTPUT") == "DELIMITED"


@pytest.mark.parametrize(
    ("statement", "column"),
    [
        (
            "CREATE STREAM output WITH (key_format='NONE') AS SELECT * FROM input "
            "PARTITION BY bar;",
            "`BAR` INTEGER KEY",
        ),
        (
            "CREATE TABLE output WITH (key_format='NONE') AS SELECT bar AS k, COUNT() "
            "FROM input GROUP BY bar;",
            "`K` INTEGER KEY",
        ),
    ],
)
def test_none_named_for_a_result_with_a_key_is_refused(
    engine: Engine, statement: str, column: str
) -> None:
    engine.execute(KEYLESS)
    with pytest.raises(HispeedError) as info:
        engine.execute(statement)
    assert str(info.value).endswith(
        f"The 'NONE' format can only be used when no columns are defined. Got: [{column}]"
    )
    assert "OUTPUT" not in engine.catalog.sources


def test_partition_by_null_is_keyless(engine: Engine) -> None:
    engine.execute(KEYLESS)
    engine.execute(
        "CREATE STREAM output WITH (key_format='NONE') AS SELECT * FROM input PARTITION BY null;"
    )
    assert key_format(engine, "OUTPUT") == "NONE"
    with pytest.raises(HispeedError, match="Key format specified for stream without key columns"):
        engine.execute(
            "CREATE STREAM other WITH (key_format='DELIMITED') AS SELECT * FROM input "
            "PARTITION BY null;"
        )


def test_the_sink_topic_takes_the_output_topic_name_prefix(engine: Engine) -> None:
    """ksql.output.topic.name.prefix names a sink's topic when KAFKA_TOPIC does not."""
    engine.execute(KEYLESS)
    props = {"ksql.output.topic.name.prefix": "some-prefix-"}
    engine.execute("CREATE STREAM output AS SELECT * FROM input;", props)
    engine.execute("CREATE STREAM named WITH (kafka_topic='mine') AS SELECT * FROM input;", props)
    assert engine.catalog.sources["OUTPUT"].topic == "some-prefix-OUTPUT"
    assert engine.catalog.sources["NAMED"].topic == "mine"
    engine.log.append("input_topic", [(None, b'{"foo": 1}')])
    engine.drain()
    [record] = engine.log.read_table("some-prefix-OUTPUT", 0).to_pylist()
    assert json.loads(record["value"]) == {"FOO": 1, "BAR": None}


def test_partition_by_gives_a_null_value_a_null_key_unless_the_key_alone_makes_it(
    engine: Engine,
) -> None:
    """ksqlDB's PartitionByParamsFactory evaluates a PARTITION BY expression on the record's
    value, which a null value (passed on by a stream's PARTITION BY) makes null; an expression
    of the old key's columns only is evaluated on the key."""
    engine.execute(
        "CREATE STREAM input (id INT KEY, name STRING, val STRING) "
        "WITH (kafka_topic='in', format='JSON', partitions=1);"
        "CREATE STREAM by_value AS SELECT * FROM input PARTITION BY (name IS NULL);"
        "CREATE STREAM by_key AS SELECT * FROM input PARTITION BY id + 1;"
    )
    engine.log.append("in", [(b"1", None), (b"2", b'{"NAME": null, "VAL": "a"}')])
    engine.drain()
    by_value = engine.log.read_table("BY_VALUE", 0).to_pylist()
    assert [(r["key"], r["value"]) for r in by_value] == [
        (None, None),  # NAME IS NULL of a null row: no key, not true
        (b"true", b'{"NAME":null,"VAL":"a","ID":2}'),
    ]
    by_key = engine.log.read_table("BY_KEY", 0).to_pylist()
    assert [json.loads(r["key"]) for r in by_key] == [2, 3]
    assert by_key[0]["value"] is None
