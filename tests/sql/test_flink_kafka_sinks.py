"""Flink's Kafka tables and sinks where hispeed differs (adversarial findings, section 4):
a 'kafka' table over a missing topic without 'partitions' is made with
`flink.kafka.partitions` partitions; INSERT INTO an 'upsert-kafka' table, or a second INSERT
INTO a sink an aggregation made a table, is refused at the target's line and column with
what to do (docs/sql.md, "Flink SQL's DDL")."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError

VIEWS = (
    "CREATE TABLE pageviews (user_id BIGINT, user_region STRING) "
    "WITH ('connector' = 'kafka', 'topic' = 'pageviews', 'format' = 'json');"
)


def test_a_kafka_table_over_a_missing_topic_without_partitions(tmp_path: Path) -> None:
    rows = [(1, "eu"), (2, "us"), (1, "eu"), (3, "eu")]
    with Engine(tmp_path / "data") as engine:
        engine.execute(VIEWS)  # Flink's own example: no 'partitions'
        assert len(engine.log.describe_topic("pageviews").partitions) == 1
        engine.execute(
            "SET 'flink.kafka.partitions' = '3';"
            "CREATE TABLE other (a INT) WITH ('connector' = 'kafka', 'topic' = 'other', "
            "'format' = 'json');"
        )
        assert len(engine.log.describe_topic("other").partitions) == 3
        engine.execute(
            "CREATE TABLE per_region (user_region STRING, pv BIGINT) "
            "WITH ('connector' = 'blackhole');"
            "INSERT INTO per_region SELECT user_region, COUNT(*) FROM pageviews "
            "GROUP BY user_region;"
        )
        for u, r in rows:
            engine.execute(f"INSERT INTO pageviews (user_id, user_region) VALUES ({u}, '{r}');")
        engine.drain()
        table = engine.log.read_table("PER_REGION", 0)
        latest: dict[str, int] = {}
        for k, v in zip(
            table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
        ):
            latest[json.loads(k)] = json.loads(v)["PV"]
    db = duckdb.connect()
    db.execute("CREATE TABLE v (u BIGINT, r VARCHAR)")
    db.executemany("INSERT INTO v VALUES (?, ?)", rows)
    assert latest == dict(db.execute("SELECT r, COUNT(*) FROM v GROUP BY r").fetchall())


def test_insert_into_a_table_is_refused_at_its_place(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            VIEWS + "CREATE TABLE per_region (user_region STRING, pv BIGINT, "
            "PRIMARY KEY (user_region) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', "
            "'topic' = 'per_region', 'key.format' = 'json', 'value.format' = 'json');"
            "CREATE TABLE bh (user_region STRING, pv BIGINT) WITH ('connector' = 'blackhole');"
            "INSERT INTO bh SELECT user_region, COUNT(*) FROM pageviews GROUP BY user_region;"
        )
        with pytest.raises(SqlError, match=r"'upsert-kafka' table.*AS SELECT") as caught:
            engine.execute(
                "INSERT INTO\n  per_region SELECT user_region, COUNT(*) FROM pageviews "
                "GROUP BY user_region;"
            )
        assert (caught.value.line, caught.value.column) == (2, 3)
        with pytest.raises(SqlError, match=r"made it a table.*declare another sink") as caught:
            engine.execute("INSERT INTO\n  bh SELECT user_region, user_id FROM pageviews;")
        assert (caught.value.line, caught.value.column) == (2, 3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("'abc'", "'partitions' is the number of partitions.*not 'abc'"),
        ("'0'", "'partitions' is the number of partitions.*not '0'"),
        ("'-3'", "'partitions' is the number of partitions.*not '-3'"),
        ("'²'", "'partitions' is the number of partitions.*not '²'"),
        ("'1', 'partitions' = '2'", "Option 'partitions' is given twice"),
    ],
)
def test_a_bad_partitions_option_is_refused_at_its_place(
    tmp_path: Path, value: str, message: str
) -> None:
    with Engine(tmp_path / "data") as engine:
        with pytest.raises(SqlError, match=message) as caught:
            engine.execute(
                "CREATE TABLE t (a INT) WITH ('connector' = 'kafka', 'topic' = 't',\n"
                f"  'format' = 'json', 'partitions' = {value});"
            )
        column = 42 if "twice" in message else 37
        assert (caught.value.line, caught.value.column) == (2, column)
        assert "T" not in engine.catalog.sources


def test_drop_table_of_a_kafka_source_table(tmp_path: Path) -> None:
    """hispeed makes a Flink 'kafka' table without a key a stream: Flink's DROP TABLE drops it."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(VIEWS)
        assert engine.catalog.sources["PAGEVIEWS"].kind == "STREAM"
        engine.execute("DROP TABLE pageviews;")
        assert "PAGEVIEWS" not in engine.catalog.sources
        engine.execute(
            "CREATE STREAM s (a INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        with pytest.raises(HispeedError, match="Incompatible data source type is stream"):
            engine.execute("DROP TABLE s;")  # ksqlDB's own streams keep ksqlDB's rule
