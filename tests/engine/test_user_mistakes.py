"""Mistakes in SQL are answered with a SqlError that says what and where (line and column),
never with an internal error: deep nesting, INSERT VALUES of the wrong type, numeric WITH
properties that are no number, aggregate parameters of the wrong kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    e.execute(
        "CREATE STREAM s (id INT KEY, v INT, d DECIMAL(4, 2), a ARRAY<INT>, m MAP<STRING, INT>) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    yield e
    e.close()


def refused(engine: Engine, sql: str) -> SqlError:
    with pytest.raises(SqlError) as info:
        engine.execute(sql)
    return info.value


@pytest.mark.parametrize(
    ("shape", "depth"),
    [
        ("(" * 100 + "v" + ")" * 100, 100),
        ("ABS(" * 100 + "v" + ")" * 100, 100),
        ("NOT " * 1000 + "true", 1000),
        ("- " * 1000 + "v", 1000),
        ("CASE WHEN v > 1 THEN 1 ELSE " * 100 + "0" + " END" * 100, 100),
        (" + ".join(["v"] * 1000), 1000),
        (" || ".join(["'x'"] * 1000), 1000),
    ],
)
def test_deep_nesting_is_a_sql_error_with_a_position(
    engine: Engine, shape: str, depth: int
) -> None:
    err = refused(engine, f"CREATE STREAM o AS SELECT id,\n  {shape} AS x FROM s;")
    assert "Statement is too large to parse" in err.reason
    assert err.line == 2
    assert err.column > 1


def test_nesting_within_the_limit_still_runs(engine: Engine) -> None:
    engine.execute("CREATE STREAM o AS SELECT id, " + "(" * 50 + "v" + ")" * 50 + " AS x FROM s;")
    engine.execute("CREATE STREAM p AS SELECT id, " + " + ".join(["v"] * 200) + " AS x FROM s;")


@pytest.mark.parametrize(
    ("columns", "value", "message"),
    [
        ("v", "'abc'", "Expected type INTEGER for field V but got STRING(abc)"),
        ("a", "'x'", "Expected type ARRAY<INTEGER> for field A but got STRING(x)"),
        ("a", "ARRAY['x']", "Expected type ARRAY<INTEGER> for field A"),
        ("m", "ARRAY[1]", "Expected type MAP<STRING, INTEGER> for field M"),
        ("d", "123.456", "Expected type DECIMAL(4, 2) for field D"),
        ("ROWTIME", "'x'", "Expected type BIGINT for field ROWTIME but got STRING(x)"),
    ],
)
def test_insert_values_of_the_wrong_type(
    engine: Engine, columns: str, value: str, message: str
) -> None:
    err = refused(engine, f"INSERT INTO s (id, {columns}) VALUES (1, {value});")
    assert err.reason == f"Failed to insert values into 'S'. {message}" or message in err.reason
    assert (err.line, err.column) == (1, len(f"INSERT INTO s (id, {columns}) VALUES (1, ") + 1)


TYPED = (
    "CREATE STREAM t (k STRING KEY, i INT, b BOOLEAN, big BIGINT, d DOUBLE, dec DECIMAL(4, 2), "
    "s STRING, ts TIMESTAMP, ai ARRAY<BIGINT>, st STRUCT<f INT>) "
    "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
)


@pytest.mark.parametrize(
    ("column", "value", "got"),
    [
        # ksqlDB's INSERT VALUES coerces as DefaultSqlValueCoercer.STRICT: numbers only widen,
        # nothing becomes a BOOLEAN or a STRING, a text is parsed only as a time or bytes
        ("i", "1.5", "INTEGER for field I but got DECIMAL(1.5)"),
        ("i", "1.0", "INTEGER for field I but got DECIMAL(1.0)"),
        ("i", "10000000000", "INTEGER for field I but got BIGINT(10000000000)"),
        ("i", "'5'", "INTEGER for field I but got STRING(5)"),
        ("b", "1", "BOOLEAN for field B but got INTEGER(1)"),
        ("b", "'true'", "BOOLEAN for field B but got STRING(true)"),
        ("big", "1.5e0", "BIGINT for field BIG but got DOUBLE(1.5)"),
        ("dec", "1.5e0", "DECIMAL(4, 2) for field DEC but got DOUBLE(1.5)"),
        ("s", "1", "STRING for field S but got INTEGER(1)"),
        ("s", "true", "STRING for field S but got BOOLEAN(true)"),
        ("ai", "ARRAY[1.5]", "ARRAY<BIGINT> for field AI but got ARRAY("),
        ("st", "STRUCT(f := 1.5)", "STRUCT<`F` INTEGER> for field ST but got STRUCT("),
    ],
)
def test_insert_values_refuses_what_ksqldb_does_not_coerce(
    engine: Engine, column: str, value: str, got: str
) -> None:
    engine.execute(TYPED)
    err = refused(engine, f"INSERT INTO t (k, {column}) VALUES ('a', {value});")
    assert err.reason.startswith(f"Failed to insert values into 'T'. Expected type {got}")
    assert (err.line, err.column) == (1, len(f"INSERT INTO t (k, {column}) VALUES ('a', ") + 1)


@pytest.mark.parametrize(
    ("column", "value", "stored"),
    [
        ("big", "5", 5),
        ("d", "1", 1.0),
        ("d", "1.5", 1.5),
        ("d", "10000000000", 1e10),
        ("dec", "1", 1),
        ("dec", "1.5", 1.5),
        ("i", "1 + 1", 2),
        ("i", "NULL", None),
        # JSON holds a TIMESTAMP as milliseconds since the epoch
        (
            "ts",
            "'2024-01-02T03:04:05'",
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1e3,
        ),
        ("ai", "ARRAY[1, 2]", [1, 2]),
        ("st", "STRUCT(f := 1)", {"F": 1}),
    ],
)
def test_insert_values_takes_what_ksqldb_coerces(
    engine: Engine, column: str, value: str, stored: object
) -> None:
    engine.execute(TYPED)
    engine.execute(f"INSERT INTO t (k, {column}) VALUES ('a', {value});")
    (batch,) = list(engine.log.read("t", 0, 0))
    record = json.loads(batch.column("value")[0].as_py())
    assert record[column.upper()] == stored


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "CREATE STREAM o WITH (timestamp='nope') AS SELECT * FROM s;",
            "The TIMESTAMP column set in the WITH clause does not exist in the schema: 'NOPE'",
        ),
        (
            # a column of the source that the result does not keep: ksqlDB checks the result's
            "CREATE STREAM o WITH (timestamp='v') AS SELECT id, d FROM s;",
            "The TIMESTAMP column set in the WITH clause does not exist in the schema: 'V'",
        ),
        (
            "CREATE TABLE o WITH (timestamp='nope') AS "
            "SELECT id, COUNT(*) AS n FROM s GROUP BY id;",
            "The TIMESTAMP column set in the WITH clause does not exist in the schema: 'NOPE'",
        ),
        (
            "CREATE STREAM o WITH (timestamp='v') AS SELECT id, v FROM s;",
            "Timestamp column, `V`, should be LONG(INT64), TIMESTAMP, or a String with a "
            "timestamp_format specified.",
        ),
        (
            # ksqlDB's TimestampExtractionPolicyFactory: text needs a format...
            "CREATE STREAM o WITH (timestamp='t') AS SELECT id, CAST(v AS STRING) AS t FROM s;",
            "A String timestamp field has been specified without also specifying the "
            "timestamp_format",
        ),
        (
            # ... and a format needs text
            "CREATE STREAM o WITH (timestamp='v', timestamp_format='yyyy') AS "
            "SELECT id, CAST(v AS BIGINT) AS v FROM s;",
            "'TIMESTAMP_FORMAT' set in the WITH clause can only be used when the timestamp "
            "column is of type STRING.",
        ),
    ],
)
def test_create_as_select_refuses_a_timestamp_column_it_cannot_use(
    engine: Engine, statement: str, message: str
) -> None:
    before = set(engine.catalog.sources), set(engine.log.list_topics(internal=True))
    with pytest.raises(HispeedError) as info:
        engine.execute(statement)
    assert str(info.value) == message
    assert (set(engine.catalog.sources), set(engine.log.list_topics(internal=True))) == before


def test_a_key_of_the_wrong_type(engine: Engine) -> None:
    err = refused(engine, "INSERT INTO s (id, v) VALUES ('k', 1);")
    assert "Expected type INTEGER for field ID but got STRING(k)" in err.reason


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        ("PARTITIONS=1e309", "Invalid value 1e309 for configuration PARTITIONS"),
        ("PARTITIONS=NULL", "Invalid value NULL for configuration PARTITIONS: Not a number"),
        (
            "PARTITIONS=''",
            "Invalid value '' for configuration PARTITIONS: Not a number of type INT",
        ),
        ("PARTITIONS=1.5", "Invalid value 1.5 for configuration PARTITIONS: Not a number"),
        ("PARTITIONS=0", "Invalid value 0 for configuration PARTITIONS: must be from 1"),
        ("PARTITIONS=1, REPLICAS=TRUE", "Invalid value True for configuration REPLICAS"),
        ("PARTITIONS=1, REPLICAS=99999", "Invalid value 99999 for configuration REPLICAS"),
        ("PARTITIONS=1, RETENTION_MS='soon'", "Invalid value soon for configuration RETENTION"),
    ],
)
def test_numeric_properties_that_are_no_number(engine: Engine, prop: str, message: str) -> None:
    sql = (
        f"CREATE STREAM t (id INT KEY, v INT) WITH (kafka_topic='t', value_format='JSON', {prop});"
    )
    err = refused(engine, sql)
    assert message in err.reason
    assert err.line == 1
    assert err.column > sql.index("WITH")
    assert "T" not in engine.catalog.sources
    assert "t" not in engine.log.list_topics()


def test_a_partition_count_in_quotes_is_read_as_ksqldb_reads_it(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM t (id INT KEY, v INT) WITH (kafka_topic='t', value_format='JSON', "
        "partitions='2');"
    )
    assert len(engine.log.describe_topic("t").partitions) == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("TOPKDISTINCT(v, 'x')", "Function 'TOPKDISTINCT' does not accept parameters (INTEGER, "),
        ("TOPK(v, NULL)", "Function 'TOPK' does not accept parameters (INTEGER, NULL)"),
        ("TOPK(v, 0)", "TOPK's k must be a positive number"),
        ("TOPK(a, 2)", "Function 'TOPK' does not accept parameters (ARRAY<INTEGER>)"),
        ("LATEST_BY_OFFSET(v, 'x')", "Function 'LATEST_BY_OFFSET' does not accept parameters"),
        ("EARLIEST_BY_OFFSET(v, false, 2)", "does not accept parameters (INTEGER, BOOLEAN, "),
        ("MAX(m)", "Function 'MAX' does not accept parameters (MAP<STRING, INTEGER>)"),
        ("CORRELATION(v, a)", "CORRELATION takes INT, BIGINT, DOUBLE or DECIMAL"),
    ],
)
def test_aggregate_arguments_of_the_wrong_kind(engine: Engine, call: str, message: str) -> None:
    sql = f"CREATE TABLE t AS SELECT id, {call} AS x FROM s GROUP BY id;"
    err = refused(engine, sql)
    assert message in err.reason
    assert (err.line, err.column) == (1, sql.index(call) + 1)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (
            "TUMBLING (SIZE 99999999999999999999 DAYS)",
            "Invalid duration: 99999999999999999999 DAYS",
        ),
        ("TUMBLING (SIZE 0 SECONDS)", "Window size (sizeMs) must be larger than zero"),
        ("SESSION (0 SECONDS)", "Gap time must be larger than zero"),
        ("HOPPING (SIZE 10 SECONDS, ADVANCE BY 0 SECONDS)", "Window advancement interval"),
        ("HOPPING (SIZE 10 SECONDS, ADVANCE BY 20 SECONDS)", "Window advancement interval"),
    ],
)
def test_windows_that_cannot_be(engine: Engine, window: str, message: str) -> None:
    sql = f"CREATE TABLE t AS SELECT id, COUNT(*) AS c FROM s WINDOW {window} GROUP BY id;"
    err = refused(engine, sql)
    assert message in err.reason
    assert err.line == 1


def test_a_window_size_property_too_long(engine: Engine) -> None:
    with pytest.raises(HispeedError, match="at most 3155760000000000 MILLISECONDS"):
        engine.execute(
            "CREATE STREAM w (id INT KEY, v INT) WITH (kafka_topic='w', value_format='JSON', "
            "partitions=1, window_type='tumbling', window_size='99999999999999999999 DAYS');"
        )


@pytest.mark.parametrize(
    "prop", ["timestamp_format=2147483648", "kafka_topic=5", "value_format=TRUE", "key=1.5"]
)
def test_text_properties_that_are_no_text(engine: Engine, prop: str) -> None:
    sql = f"CREATE STREAM t (id INT KEY, v INT) WITH (partitions=1, value_format='JSON', {prop});"
    sql = sql.replace("value_format='JSON', value_format=TRUE", "value_format=TRUE")
    err = refused(engine, sql)
    assert "Expected value to be a string" in err.reason
    assert err.column == sql.index(prop) + 1


def test_like_with_a_pattern_that_is_no_text(engine: Engine) -> None:
    err = refused(engine, "CREATE STREAM o AS SELECT id, v FROM s WHERE 'x' LIKE -1;")
    assert "LIKE needs a STRING pattern, not INTEGER\nStatement: " in err.reason


def test_insert_with_a_column_list_into_no_sink_says_the_sink_does_not_exist(
    engine: Engine,
) -> None:
    # the sink's absence is the mistake, not the column list (Flink's form)
    for columns in ("", " (id, v)"):
        err = refused(engine, f"INSERT INTO nosink{columns} SELECT id, v FROM s;")
        assert "Source `NOSINK` does not exist." in err.reason, err.reason
        assert (err.line, err.column) == (1, 13)
    # into a stream that exists, the column list is what is refused
    engine.execute("CREATE STREAM t AS SELECT id, v FROM s;")
    err = refused(engine, "INSERT INTO t (id, v) SELECT id, v FROM s;")
    assert "(columns) SELECT is Flink's" in err.reason
