"""The engine end to end on the embedded log: statements, persistent queries, restarts."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError
from hispeed.runtime.task import PROCESSING_LOG

EngineFactory = Callable[..., Engine]


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[EngineFactory]:
    opened: list[Engine] = []

    def make(path: Path | None = None, per_record: bool = True) -> Engine:
        # most tests check ksqlDB's per-record semantics (its record cache off)
        properties = {"ksql.streams.cache.max.bytes.buffering": "0"} if per_record else {}
        e = Engine(path or tmp_path / "data", fsync="never", properties=properties)
        opened.append(e)
        return e

    yield make
    for e in opened:
        e.close()


@pytest.fixture
def engine(engine_factory: EngineFactory) -> Engine:
    return engine_factory()


def rows(engine: Engine, topic: str) -> list[tuple[Any, Any, int]]:
    out = []
    for p in range(len(engine.log.describe_topic(topic).partitions)):
        for r in engine.log.read_table(topic, p).to_pylist():
            value = json.loads(r["value"]) if r["value"] is not None else None
            out.append((r["key"], value, r["timestamp"]))
    return out


READINGS = (
    "CREATE STREAM readings (device STRING KEY, temp DOUBLE, site STRING) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


def test_projection_and_filter(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute(
        "CREATE STREAM hot AS SELECT device, temp * 2 AS doubled, UCASE(site) AS site "
        "FROM readings WHERE temp > 20;"
    )
    engine.insert("readings", {"DEVICE": "d1", "TEMP": 25.0, "SITE": "lab"}, timestamp=1000)
    engine.insert("readings", {"DEVICE": "d2", "TEMP": 10.0, "SITE": "lab"}, timestamp=2000)
    engine.drain()
    assert rows(engine, "HOT") == [(b"d1", {"DOUBLED": 50.0, "SITE": "LAB"}, 1000)]


def test_group_by_emits_every_change(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE stats AS SELECT device, COUNT(*) AS n, MAX(temp) AS peak, "
        "AVG(temp) AS mean FROM readings GROUP BY device;"
    )
    for i, t in enumerate([10.0, 30.0, 20.0]):
        engine.insert("readings", {"DEVICE": "d1", "TEMP": t}, timestamp=i)
    engine.drain()
    assert [v for _, v, _ in rows(engine, "STATS")] == [
        {"N": 1, "PEAK": 10.0, "MEAN": 10.0},
        {"N": 2, "PEAK": 30.0, "MEAN": 20.0},
        {"N": 3, "PEAK": 30.0, "MEAN": 20.0},
    ]


def test_by_default_a_batch_emits_the_latest_change_per_key(
    engine_factory: EngineFactory, tmp_path: Path
) -> None:
    engine = engine_factory(tmp_path / "coalesced", per_record=False)
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE stats AS SELECT device, COUNT(*) AS n FROM readings GROUP BY device;"
    )
    for device in ["a", "b", "a", "a", "b"]:
        engine.insert("readings", {"DEVICE": device, "TEMP": 1.0})
    engine.drain()
    assert [(k, v["N"]) for k, v, _ in rows(engine, "STATS")] == [(b"a", 3), (b"b", 2)]


def test_emit_final_outputs_each_window_once_when_it_closes(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE w AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY device EMIT FINAL;"
    )
    for ts in [1000, 2000, 9000, 12000, 15000]:
        engine.insert("readings", {"DEVICE": "d", "TEMP": 1.0}, timestamp=ts)
    engine.drain()
    # [0, 10 s) closed when stream time reached 12 s; [10 s, 20 s) is still open
    assert [(int.from_bytes(k[-8:], "big"), v["N"], t) for k, v, t in rows(engine, "W")] == [
        (0, 3, 9000)
    ]
    with pytest.raises(HispeedError, match="only supported for windowed aggregations"):
        engine.execute(
            "CREATE TABLE nw AS SELECT device, COUNT(*) FROM readings GROUP BY device EMIT FINAL;"
        )


@pytest.mark.parametrize(("grace", "finals"), [(1000, [(10_000, 1, 10_000)]), (0, [(0, 2, 1000)])])
def test_emit_final_leaves_out_a_window_its_store_no_longer_holds(
    engine: Engine, grace: int, finals: list[tuple[int, int, int]]
) -> None:
    # Kafka Streams' window store (ksqlDB's EMIT FINAL) keeps a window for size + grace back
    # from the newest window start; a window still open when a much later record comes is
    # gone by then and never output
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE w AS SELECT device, COUNT(*) AS n FROM readings WINDOW TUMBLING "
        f"(SIZE 10 SECONDS, GRACE PERIOD {grace} MILLISECONDS) GROUP BY device EMIT FINAL;"
    )
    stamps = [0, 1000, 10_000, 25_000] if grace else [0, 1000, 10_000]
    for ts in stamps:
        engine.insert("readings", {"DEVICE": "d", "TEMP": 1.0}, timestamp=ts)
    engine.drain()
    got = [(int.from_bytes(k[-8:], "big"), v["N"], t) for k, v, t in rows(engine, "W")]
    assert got == finals


def test_fraud_detection_with_a_tumbling_window_and_having(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM authorization_attempts (card_number STRING KEY, amount DOUBLE) "
        "WITH (kafka_topic='auth', value_format='JSON', partitions=1);"
    )
    engine.execute(
        "CREATE TABLE possible_fraud AS SELECT card_number, count(*) FROM "
        "authorization_attempts WINDOW TUMBLING (SIZE 5 SECONDS) GROUP BY card_number "
        "HAVING count(*) > 3;"
    )
    for ts in [0, 1000, 2000, 3000, 4000, 6000]:
        engine.insert("authorization_attempts", {"CARD_NUMBER": "c1", "AMOUNT": 1.0}, timestamp=ts)
    engine.drain()
    out = rows(engine, "POSSIBLE_FRAUD")
    # counts 1 to 3 fail HAVING and were never output, so nothing is deleted for them
    assert [v for _, v, _ in out] == [{"KSQL_COL_0": 4}, {"KSQL_COL_0": 5}]
    assert out[0][0] == b"c1" + (0).to_bytes(8, "big")


def test_having_deletes_a_row_that_stops_matching(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE pairs AS SELECT device, COUNT(*) AS n FROM readings "
        "GROUP BY device HAVING COUNT(*) = 2;"
    )
    for ts in range(3):
        engine.insert("readings", {"DEVICE": "d", "TEMP": 1.0}, timestamp=ts)
    engine.drain()
    assert [v for _, v, _ in rows(engine, "PAIRS")] == [{"N": 2}, None]


def test_hopping_and_session_windows(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE hop AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) GROUP BY device;"
    )
    engine.execute(
        "CREATE TABLE sess AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW SESSION (10 SECONDS) GROUP BY device;"
    )
    for ts in [7000, 30000, 12000]:
        engine.insert("readings", {"DEVICE": "d", "TEMP": 1.0}, timestamp=ts)
    engine.drain()
    hop = [(int.from_bytes(k[-8:], "big"), v["N"]) for k, v, _ in rows(engine, "HOP")]
    assert hop == [(0, 1), (5000, 1), (25000, 1), (30000, 1), (5000, 2), (10000, 1)]
    sess = [
        # Kafka Streams' session key: key, end, start (tests/engine/test_windowed_keys.py)
        (int.from_bytes(k[-8:], "big"), int.from_bytes(k[-16:-8], "big"), v and v["N"])
        for k, v, _ in rows(engine, "SESS")
    ]
    # 7000 opens a session, 30000 another; 12000 extends the first (within the 10 s gap)
    assert sess == [(7000, 7000, 1), (30000, 30000, 1), (7000, 7000, None), (7000, 12000, 2)]


def test_late_records_are_dropped_after_the_grace_period(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE w AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 5 SECONDS) GROUP BY device;"
    )
    for ts in [1000, 16000, 2000, 20000, 3000]:
        engine.insert("readings", {"DEVICE": "d", "TEMP": 1.0}, timestamp=ts)
    engine.drain()
    got = [(int.from_bytes(k[-8:], "big"), v["N"]) for k, v, _ in rows(engine, "W")]
    # 2000 arrives while stream time is 16000 < 10000 + 5000 + ...: still in grace? no:
    # window [0, 10000) closes at 15000, so 2000 and 3000 are late and dropped
    assert got == [(0, 1), (10000, 1), (20000, 1)]


def test_table_aggregation_retracts_the_old_value(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE users (id STRING PRIMARY KEY, region STRING) "
        "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
    )
    engine.execute(
        "CREATE TABLE per_region AS SELECT region, COUNT(*) AS n FROM users GROUP BY region;"
    )
    engine.insert("users", {"ID": "u1", "REGION": "eu"})
    engine.insert("users", {"ID": "u2", "REGION": "eu"})
    engine.insert("users", {"ID": "u1", "REGION": "us"})
    engine.drain()
    assert [(k, v["N"]) for k, v, _ in rows(engine, "PER_REGION")] == [
        (b"eu", 1),
        (b"eu", 2),
        (b"eu", 1),
        (b"us", 1),
    ]


def test_a_bad_record_goes_to_the_processing_log_and_the_query_goes_on(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute("CREATE STREAM copy AS SELECT device, temp FROM readings;")
    engine.log.append("readings", [(b"d1", b"{not json"), (b"d2", b'{"temp": 3.5}')])
    engine.drain()
    assert rows(engine, "COPY") == [(b"d2", {"TEMP": 3.5}, rows(engine, "COPY")[0][2])]
    logged = [
        json.loads(v)
        for _, v, _ in [
            (r["key"], r["value"], 0) for r in engine.log.read_table(PROCESSING_LOG, 0).to_pylist()
        ]
    ]
    assert len(logged) == 1
    assert logged[0]["offset"] == 0
    assert "Error deserializing value" in logged[0]["message"]


def test_a_row_that_cannot_be_computed_is_logged_and_null(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM nums (k STRING KEY, a INT, b INT) WITH (kafka_topic='nums', "
        "value_format='JSON', partitions=1);"
    )
    engine.execute("CREATE STREAM q AS SELECT k, a / b AS ratio FROM nums;")
    engine.insert("nums", {"K": "x", "A": 6, "B": 0})
    engine.insert("nums", {"K": "y", "A": 6, "B": 3})
    engine.drain()
    assert [v for _, v, _ in rows(engine, "Q")] == [{"RATIO": None}, {"RATIO": 2}]
    assert (
        "/ by zero" in engine.log.read_table(PROCESSING_LOG, 0).column("value")[0].as_py().decode()
    )


def test_restart_restores_queries_and_state_without_repeating(
    engine_factory: EngineFactory, tmp_path: Path
) -> None:
    engine = engine_factory(tmp_path / "d")
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE stats AS SELECT device, COUNT(*) AS n FROM readings GROUP BY device;"
    )
    engine.insert("readings", {"DEVICE": "d1", "TEMP": 1.0})
    engine.drain()
    engine.close()
    engine = engine_factory(tmp_path / "d")
    assert set(engine.catalog.sources) == {"READINGS", "STATS"}
    assert list(engine.tasks) == ["CTAS_STATS_0"]
    engine.insert("readings", {"DEVICE": "d1", "TEMP": 2.0})
    engine.drain()
    assert [v["N"] for _, v, _ in rows(engine, "STATS")] == [1, 2]


def test_unknown_columns_name_the_ones_that_exist(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM clickstream (userid VARCHAR KEY, url VARCHAR, status INT) "
        "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
    )
    with pytest.raises(SqlError) as err:
        engine.execute("CREATE STREAM vip AS SELECT userid, fullname FROM clickstream;")
    assert (err.value.line, err.value.column) == (1, 37)
    assert "column 'FULLNAME' cannot be resolved" in str(err.value)
    assert "USERID, URL, STATUS" in str(err.value)


def test_the_old_key_property_says_how_to_declare_the_key(engine: Engine) -> None:
    with pytest.raises(SqlError, match="user_id INTEGER PRIMARY KEY"):
        engine.execute(
            "CREATE TABLE users (user_id INTEGER, name VARCHAR) WITH (key = "
            "'user_id', kafka_topic='users', value_format='JSON', partitions=1);"
        )


def test_record_times_from_source_and_sink_timestamp_columns(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM events (k STRING KEY, at BIGINT, v INT) "
        "WITH (kafka_topic='events', value_format='JSON', timestamp='at', partitions=1);"
    )
    engine.execute(
        "CREATE STREAM later WITH (timestamp='t2') AS SELECT k, at + 5 AS t2 FROM events;"
    )
    for at in (100, -1, 200):  # a time before 1970 is dropped, as ksqlDB does
        engine.insert("events", {"K": "a", "AT": at, "V": 1}, timestamp=7)
    engine.drain()
    assert [(v, ts) for _, v, ts in rows(engine, "LATER")] == [
        ({"T2": 105}, 105),
        ({"T2": 205}, 205),
    ]
    assert engine.log.offsets(PROCESSING_LOG, 0)[1] == 1


def test_a_record_without_a_key_keeps_none_in_any_key_format(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM pairs (a STRING KEY, b STRING KEY, v INT) "
        "WITH (kafka_topic='pairs', format='DELIMITED', partitions=1);"
    )
    engine.execute("CREATE STREAM pairs_json WITH (key_format='JSON') AS SELECT * FROM pairs;")
    engine.log.append("pairs", [(None, b"1"), (b"x,y", b"2")], partition=0)
    engine.drain()
    keys = [r["key"] for r in engine.log.read_table("PAIRS_JSON", 0).to_pylist()]
    assert keys == [None, b'{"A":"x","B":"y"}']


def test_struct_star_selects_every_field(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM nested (k STRING KEY, s STRUCT<a INT, b STRING>) "
        "WITH (kafka_topic='nested', value_format='JSON', partitions=1);"
    )
    engine.execute("CREATE STREAM flat AS SELECT k, s->* FROM nested;")
    assert engine.catalog.get("FLAT").schema_text() == "`K` STRING KEY, `A` INTEGER, `B` STRING"
    engine.insert("nested", {"K": "x", "S": {"A": 1, "B": "one"}})
    engine.drain()
    assert rows(engine, "FLAT")[0][:2] == (b"x", {"A": 1, "B": "one"})
    with pytest.raises(SqlError, match="may only stand alone in a select list"):
        engine.execute("CREATE STREAM bad AS SELECT k, s FROM nested WHERE s->* IS NULL;")


def test_a_table_record_without_a_key_changes_nothing(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE t (k STRING PRIMARY KEY, v INT) "
        "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
    )
    engine.execute("CREATE TABLE t2 AS SELECT k, v * 2 AS v2 FROM t;")
    engine.log.append("t", [(None, b'{"V": 1}'), (b"a", b'{"V": 2}')], partition=0)
    engine.drain()
    assert [r[:2] for r in rows(engine, "T2")] == [(b"a", {"V2": 4})]


def test_a_stream_null_value_passes_a_projection_but_no_filter(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute("CREATE STREAM copy AS SELECT * FROM readings;")
    engine.execute("CREATE STREAM nulls AS SELECT * FROM readings WHERE temp IS NULL;")
    engine.log.append("readings", [(b"d1", None)], partition=0)
    engine.insert("readings", {"DEVICE": "d2", "TEMP": None, "SITE": "x"}, timestamp=5)
    engine.drain()
    assert [r[:2] for r in rows(engine, "COPY")] == [
        (b"d1", None),
        (b"d2", {"TEMP": None, "SITE": "x"}),
    ]
    assert [r[:2] for r in rows(engine, "NULLS")] == [(b"d2", {"TEMP": None, "SITE": "x"})]


def test_partition_by_rekeys_and_passes_null_values_on(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute("CREATE STREAM by_site AS SELECT * FROM readings PARTITION BY site;")
    engine.execute("CREATE STREAM by_abs AS SELECT * FROM readings PARTITION BY ABS(temp);")
    assert engine.catalog.get("BY_SITE").schema_text() == (
        "`SITE` STRING KEY, `TEMP` DOUBLE, `DEVICE` STRING"
    )
    assert engine.catalog.get("BY_ABS").schema_text().startswith("`KSQL_COL_0` DOUBLE KEY")
    engine.insert("readings", {"DEVICE": "d1", "TEMP": -2.5, "SITE": "lab"}, timestamp=1000)
    engine.flush()  # insert's rows go in within the linger: before the raw record
    engine.log.append("readings", [(b"d2", None)], partition=0)
    engine.drain()
    assert rows(engine, "BY_SITE")[0] == (b"lab", {"TEMP": -2.5, "DEVICE": "d1"}, 1000)
    # a null value is passed on, keyed by the expression over its (null) columns
    assert rows(engine, "BY_SITE")[1][:2] == (None, None)
    # the KAFKA key format writes a DOUBLE as 8 big-endian bytes
    assert rows(engine, "BY_ABS")[0][:2] == (
        struct.pack(">d", 2.5),
        {"TEMP": -2.5, "SITE": "lab", "DEVICE": "d1"},
    )


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "CREATE STREAM s AS SELECT device, temp FROM readings PARTITION BY site, temp;",
            "must include the partitioning expressions READINGS.SITE and READINGS.TEMP",
        ),
        (
            "CREATE STREAM s AS SELECT temp AS t2, site FROM readings PARTITION BY t2;",
            "PARTITION BY column 'T2' cannot be resolved",
        ),
        (
            "CREATE STREAM s AS SELECT * FROM readings PARTITION BY site, NULL;",
            "Cannot PARTITION BY multiple columns including NULL",
        ),
        (
            "CREATE STREAM s WITH (key_format='JSON') AS SELECT * FROM readings PARTITION BY NULL;",
            "Key format specified for stream without key columns.",
        ),
        (
            """INSERT INTO "readings" (device) VALUES ('x');""",
            "Did you mean READINGS? Hint: try removing double quotes from the source name.",
        ),
        (
            "CREATE STREAM csv (k STRING KEY, x INT) WITH (kafka_topic='readings', "
            "value_format='DELIMITED'); CREATE TABLE t AS SELECT k, AVG(x) FROM csv GROUP BY k;",
            "has an intermediate type that the value format can not handle",
        ),
        (
            "CREATE STREAM h (a INT, hs BYTES HEADERS) WITH (kafka_topic='readings', "
            "value_format='JSON');",
            "Invalid type for HEADERS column: expected ARRAY<STRUCT<`KEY` STRING, `VALUE` BYTES>>",
        ),
        (
            "CREATE STREAM h (a INT, hk INT HEADER('k')) WITH (kafka_topic='readings', "
            "value_format='JSON');",
            "Invalid type for HEADER('k') column: expected BYTES, got INTEGER",
        ),
        (
            "CREATE STREAM s AS SELECT * FROM readings LIMIT 2;",
            "CREATE STREAM AS SELECT statements don't support LIMIT clause.",
        ),
        (
            "SELECT * FROM readings EMIT CHANGES LIMIT 2.5;",
            "Value must be integer for command: LIMIT",
        ),
        ("CREATE STREAM s AS SELECT temp FROM readings;", "Key missing from projection"),
        (
            "CREATE TABLE t AS SELECT device, temp FROM readings;",
            "Your SELECT query produces a STREAM",
        ),
        (
            "CREATE STREAM s AS SELECT device FROM readings;",
            "The projection contains no value columns.",
        ),
        (
            "CREATE TABLE t AS SELECT COUNT(*) FROM readings GROUP BY device;",
            "Key missing from projection",
        ),
        (
            "CREATE TABLE t AS SELECT device, temp, COUNT(*) FROM readings GROUP BY device;",
            "Non-aggregate SELECT expression(s) not part of GROUP BY: TEMP",
        ),
        (
            "CREATE STREAM s AS SELECT device FROM readings WHERE COUNT(*) > 1;",
            "not allowed in WHERE",
        ),
        (
            "CREATE STREAM s AS SELECT device, temp + site FROM readings;",
            "Unsupported arithmetic types",
        ),
        (
            "CREATE STREAM s AS SELECT device, NOSUCH(temp) FROM readings;",
            "Can't find any functions with the name 'NOSUCH'",
        ),
        (
            "CREATE STREAM readings (a INT) WITH (kafka_topic='x', value_format='JSON');",
            "already exists",
        ),
        (
            "CREATE STREAM x (a INT) WITH (kafka_topic='missing', value_format='JSON');",
            "Topic 'missing' does not exist",
        ),
        ("CREATE STREAM x (a INT) WITH (value_format='JSON');", "KAFKA_TOPIC"),
        (
            "CREATE TABLE x (a INT) WITH (kafka_topic='readings', value_format='JSON');",
            "Tables require a PRIMARY KEY",
        ),
    ],
)
def test_statement_errors(engine: Engine, statement: str, message: str) -> None:
    engine.execute(READINGS)
    with pytest.raises(HispeedError) as err:
        engine.execute(statement)
    assert message in str(err.value)


def test_insert_values_show_describe_drop(engine: Engine) -> None:
    engine.execute(READINGS)
    engine.execute("INSERT INTO readings (device, temp, ROWTIME) VALUES ('d9', 1.5, 42);")
    assert rows(engine, "readings") == [(b"d9", {"TEMP": 1.5, "SITE": None}, 42)]
    engine.execute("CREATE STREAM copy AS SELECT * FROM readings;")
    assert [r["name"] for r in engine.execute("SHOW STREAMS;")[0].rows] == ["COPY", "READINGS"]
    assert [r["id"] for r in engine.execute("SHOW QUERIES;")[0].rows] == ["CSAS_COPY_0"]
    described = engine.execute("DESCRIBE readings;")[0]
    assert [r["name"] for r in described.rows] == ["DEVICE", "TEMP", "SITE"]
    with pytest.raises(
        HispeedError,
        match="The following queries read from this source: "
        r"\[CSAS_COPY_0\]",
    ):
        engine.execute("DROP STREAM readings;")
    engine.execute("DROP STREAM copy DELETE TOPIC;")
    assert "COPY" not in engine.log.list_topics()
    engine.execute("DROP STREAM readings;")
    assert engine.execute("SHOW STREAMS;")[0].rows == []
