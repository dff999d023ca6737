"""Statements ksqlDB refuses are refused with its message, line and column (its analyzer's
and planner's rules, read from its source), and their valid neighbours still run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        tmp_path / "data",
        fsync="never",
        properties={"ksql.streams.cache.max.bytes.buffering": "0"},
    )
    e.execute(
        "CREATE STREAM s (k STRING KEY, v INT, t STRING) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    e.execute(
        "CREATE STREAM w (k STRING KEY, v INT) "
        "WITH (kafka_topic='w', value_format='JSON', window_type='Session', partitions=1);"
    )
    yield e
    e.close()


def refused(engine: Engine, statement: str) -> SqlError:
    with pytest.raises(SqlError) as info:
        engine.execute(statement)
    return info.value


def error_of(engine: Engine, statement: str) -> str:
    """The message of the error `statement` is refused with."""
    with pytest.raises(HispeedError) as info:
        engine.execute(statement)
    return str(info.value)


def values(engine: Engine, topic: str) -> list[Any]:
    out = []
    for p in range(len(engine.log.describe_topic(topic).partitions)):
        for r in engine.log.read_table(topic, p).to_pylist():
            out.append(json.loads(r["value"]) if r["value"] is not None else None)
    return out


def test_text_compared_with_rowtime_is_a_timestamp(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM late AS SELECT k, v FROM s "
        "WHERE ROWTIME >= '2020-01-01T00:00:00.001' AND v > 0;"
    )
    engine.execute(
        "CREATE STREAM mid AS SELECT k, v FROM s "
        "WHERE ROWTIME BETWEEN '2019-12-31T23' AND '2020-01-01T00:00:00+0100';"
    )
    jan1 = 1577836800000  # 2020-01-01T00:00:00Z
    for v, at in [(1, jan1), (2, jan1 + 1), (3, jan1 - 3_600_000), (-1, jan1 + 5)]:
        engine.insert("s", {"K": "a", "V": v}, timestamp=at)
    engine.drain()
    assert values(engine, "LATE") == [{"V": 2}]
    assert values(engine, "MID") == [{"V": 3}]  # 23:00 UTC both: a partial and a zoned bound


def test_text_compared_with_window_bounds_is_a_timestamp(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM ws AS SELECT k, v FROM w "
        "WHERE '2020-02-10T08:31:44.001+0000' <= WINDOWSTART;"
    )


def test_a_text_timestamp_that_does_not_parse_says_so(engine: Engine) -> None:
    err = refused(engine, "CREATE STREAM x AS SELECT k, v FROM s WHERE ROWTIME > 'soon';")
    assert err.reason.startswith("Error in WHERE expression: Failed to parse timestamp 'soon'")
    assert (err.line, err.column) == (1, 55)


def test_text_is_not_a_number_in_a_having_comparison(engine: Engine) -> None:
    err = refused(
        engine,
        "CREATE TABLE x AS SELECT k, SUM(v) AS total FROM s GROUP BY k HAVING SUM(v) > '100';",
    )
    assert err.reason == (
        "Error in HAVING expression: Cannot compare SUM(V) (INTEGER) to '100' (STRING) "
        "with GREATER_THAN.\nStatement: (SUM(V) > '100')"
    )
    assert (err.line, err.column) == (1, 77)
    engine.execute(
        "CREATE TABLE ok AS SELECT k, SUM(v) AS total FROM s GROUP BY k HAVING SUM(v) > 100;"
    )


def test_collections_are_compared_only_for_equality(engine: Engine) -> None:
    err = refused(engine, "CREATE STREAM x AS SELECT k, ARRAY[v] < ARRAY[v] AS lt FROM s;")
    assert "Cannot compare ARRAY[V] (ARRAY<INTEGER>) to ARRAY[V] (ARRAY<INTEGER>) with " in (
        err.reason
    )
    engine.execute("CREATE STREAM ok AS SELECT k, ARRAY[v] = ARRAY[v] AS eq FROM s;")


def test_comparison_with_an_untyped_null_is_refused(engine: Engine) -> None:
    err = refused(engine, "CREATE STREAM x AS SELECT k, v FROM s WHERE v = NULL;")
    assert err.reason.startswith(
        "Error in WHERE expression: Comparison with NULL not supported: INTEGER = NULL"
    )
    engine.execute("CREATE STREAM ok AS SELECT k, v FROM s WHERE v IS NULL;")


@pytest.mark.parametrize(
    ("statement", "message", "column"),
    [
        (
            "CREATE STREAM x AS SELECT k, v AS windowend FROM w;",
            "`WINDOWEND` is a reserved column name. You cannot use it as an alias for a column.",
            30,
        ),
        (
            "CREATE STREAM x AS SELECT k, v AS rowtime FROM s;",
            "`ROWTIME` is a reserved column name. You cannot use it as an alias for a column.",
            30,
        ),
        (
            "CREATE STREAM x AS SELECT k, WINDOWSTART FROM w;",
            "Reserved column name in select: `WINDOWSTART`. Please remove or alias the column.",
            30,
        ),
        (
            "CREATE STREAM x AS SELECT k, s.ROWOFFSET FROM s;",
            "Reserved column name in select: `ROWOFFSET`. Please remove or alias the column.",
            30,
        ),
    ],
)
def test_system_column_names_are_reserved(
    engine: Engine, statement: str, message: str, column: int
) -> None:
    err = refused(engine, statement)
    assert err.reason == message
    assert (err.line, err.column) == (1, column)


def test_system_columns_may_be_selected_under_another_name(engine: Engine) -> None:
    engine.execute("CREATE STREAM ok AS SELECT k, WINDOWSTART AS ws, ROWTIME AS rt FROM w;")


@pytest.mark.parametrize(
    ("statement", "message", "column"),
    [
        ("CREATE STREAM x AS SELECT k, i.bob FROM s i;", "SELECT column 'I.BOB' cannot", 30),
        # WHERE is checked before SELECT, as ksqlDB's analyzer does
        (
            "CREATE STREAM x AS SELECT k, nope FROM s WHERE gone > 1;",
            "WHERE column 'GONE' cannot be resolved.",
            48,
        ),
        # an unknown column is reported before a type error elsewhere
        (
            "CREATE STREAM x AS SELECT k, nope FROM s WHERE v = 'x';",
            "SELECT column 'NOPE' cannot be resolved.",
            30,
        ),
        (
            "CREATE STREAM x AS SELECT k, v FROM s PARTITION BY s.zz;",
            "PARTITION BY column 'S.ZZ' cannot be resolved. 'S.ZZ' must be a column in the "
            "source schema since PARTITION BY is applied on the input.",
            52,
        ),
    ],
)
def test_unknown_columns_are_named_as_written_clause_by_clause(
    engine: Engine, statement: str, message: str, column: int
) -> None:
    err = refused(engine, statement)
    assert err.reason.startswith(message)
    assert (err.line, err.column) == (1, column)


def test_a_bare_null_value_column_needs_a_cast(engine: Engine) -> None:
    err = refused(engine, "CREATE STREAM x AS SELECT k, NULL AS n FROM s;")
    assert err.reason == (
        "Can't infer a type of null. Please explicitly cast it to a required type, e.g. "
        "CAST(null AS VARCHAR)."
    )
    engine.execute("CREATE STREAM ok AS SELECT k, CAST(NULL AS VARCHAR) AS n FROM s;")


def test_persistent_queries_cannot_read_windowed_tables(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE wt (k STRING PRIMARY KEY, v INT) "
        "WITH (kafka_topic='wt', value_format='JSON', window_type='Tumbling', "
        "window_size='1 second', partitions=1);"
    )
    err = refused(engine, "CREATE TABLE x AS SELECT * FROM wt;")
    assert err.reason == "KSQL does not support persistent queries on windowed tables."
    # a windowed stream may be read
    engine.execute("CREATE STREAM ok AS SELECT * FROM w;")


SOURCE_STREAM = (
    "CREATE SOURCE STREAM ro (k STRING KEY, v INT) "
    "WITH (kafka_topic='ro', value_format='JSON', partitions=1);"
)


def test_read_only_sources_refuse_delete_topic_replace_and_alter(engine: Engine) -> None:
    engine.execute(SOURCE_STREAM)
    assert (
        error_of(engine, "DROP STREAM ro DELETE TOPIC;")
        == "Cannot delete topic for read-only source: RO"
    )
    assert (
        error_of(
            engine,
            "CREATE OR REPLACE STREAM ro (k STRING KEY, v INT, w INT) "
            "WITH (kafka_topic='ro', value_format='JSON');",
        )
        == "Cannot add stream 'RO': CREATE OR REPLACE is not supported on source streams."
    )
    assert (
        error_of(engine, "ALTER STREAM ro ADD COLUMN w INT;")
        == "Cannot alter stream 'RO': ALTER operations are not supported on source streams."
    )
    engine.execute("DROP STREAM ro;")  # without DELETE TOPIC it may go
    assert "ro" in engine.log.list_topics()


def test_delete_topic_is_refused_while_another_source_reads_it(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM s2 (k STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON');"
    )
    assert (
        error_of(engine, "DROP STREAM s DELETE TOPIC;")
        == "Refusing to delete topic. Found other data sources (S2) using topic s"
    )
    assert error_of(engine, "DROP TABLE s2;") == (
        "Incompatible data source type is stream, but statement was DROP table"
    )


def test_alter_adds_value_columns_for_later_queries(engine: Engine) -> None:
    result = engine.execute("ALTER STREAM s ADD COLUMN extra BIGINT, ADD more STRING;")
    assert "Stream S altered." in str(result)
    engine.execute("CREATE STREAM wide AS SELECT k, extra, more FROM s;")
    engine.insert("s", {"K": "a", "V": 1, "EXTRA": 7, "MORE": "m"}, timestamp=1)
    engine.drain()
    assert values(engine, "WIDE") == [{"EXTRA": 7, "MORE": "m"}]
    assert "Cannot add column V to schema. A column with" in error_of(
        engine, "ALTER STREAM s ADD COLUMN v INT;"
    )
    assert "ALTER command is not supported for CREATE ... AS" in error_of(
        engine, "ALTER STREAM wide ADD COLUMN z INT;"
    )
    assert error_of(engine, "ALTER TABLE nope ADD COLUMN z INT;") == "Source NOPE does not exist."


def test_messages_name_joined_columns_as_ksqldb_flattens_them(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE t (id STRING PRIMARY KEY, bar STRING) "
        "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
    )
    err = refused(
        engine,
        "CREATE STREAM x AS SELECT s.k, v FROM s JOIN t ON s.k = t.id WHERE s.v > t.bar;",
    )
    assert err.reason == (
        "Error in WHERE expression: Cannot compare S_V (INTEGER) to T_BAR (STRING) with "
        "GREATER_THAN.\nStatement: (S_V > T_BAR)"
    )
    assert (err.line, err.column) == (1, 72)
    err = refused(
        engine,
        "CREATE TABLE y AS SELECT s.k, SUM(v) AS total FROM s JOIN t ON s.k = t.id "
        "GROUP BY s.k HAVING SUM(s.v) > '1';",
    )
    assert "Cannot compare SUM(S_V) (INTEGER) to '1' (STRING) with GREATER_THAN." in err.reason
    engine.execute(
        "CREATE STREAM ok AS SELECT s.k, v FROM s JOIN t ON s.k = t.id WHERE s.t > t.bar;"
    )


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "INSERT INTO nowhere SELECT k, v FROM s;",
            # found by ksqlDB's AstSanitizer, so wrapped by its EngineContext.prepare
            "Exception while preparing statement: Line: 1, Col: 13: Source `NOWHERE` does not "
            "exist.",
        ),
        (
            "CREATE STREAM x AS SELECT k, nope FROM s;",
            "Line: 1, Col: 30: SELECT column 'NOPE' cannot be resolved.",
        ),
        (
            "CREATE STREAM x AS SELECT s.k, v FROM s JOIN u WITHIN 1 SECOND ON s.k = u.k;",
            "Exception while preparing statement: Line: 1, Col: 32: Column 'V' is ambiguous. "
            "Could be S.V or U.V.",
        ),
        (
            "CREATE STREAM x AS SELECT k, v FROM s WINDOW TUMBLING (SIZE 1 SECOND);",
            "Line: 1, Col: 39: WINDOW clause requires a GROUP BY clause.",
        ),
    ],
)
def test_analyzer_errors_at_a_node_are_placed_as_ksqldb_places_them(
    engine: Engine, statement: str, message: str
) -> None:
    engine.execute(
        "CREATE STREAM u (k STRING KEY, v INT) WITH (kafka_topic='u', value_format='JSON', "
        "partitions=1);"
    )
    err = refused(engine, statement)
    assert str(err).startswith(message)  # no clause prefix: refused before compiling
    assert err.located


def test_insert_into_a_table_is_refused_while_preparing_as_ksqldb_does(engine: Engine) -> None:
    engine.execute("CREATE TABLE tt AS SELECT k, COUNT(*) AS n FROM s GROUP BY k;")
    assert error_of(engine, "INSERT INTO tt SELECT k, v FROM s;") == (
        "Exception while preparing statement: INSERT INTO can only be used to insert into a "
        "stream. TT is a table."
    )


def test_filter_errors_name_the_filter_as_ksqldb_does(engine: Engine) -> None:
    err = refused(engine, "CREATE STREAM x AS SELECT k, v FROM s WHERE v = 'x' AND v > 1;")
    assert err.reason == (
        "Error in WHERE expression: Cannot compare V (INTEGER) to 'x' (STRING) with EQUAL.\n"
        "Statement: ((V = 'x') AND (V > 1))"
    )
    err = refused(engine, "CREATE STREAM x AS SELECT k, v FROM s WHERE v + 1;")
    assert err.reason == (
        "Type error in WHERE expression: Should evaluate to boolean but is (V + 1) (INTEGER) "
        "instead.\nStatement: (V + 1)"
    )
    err = refused(
        engine,
        "CREATE TABLE x AS SELECT k, COUNT(*) AS n FROM s GROUP BY k HAVING COUNT(*) > 't';",
    )
    assert err.reason.endswith("\nStatement: (COUNT(*) > 't')")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("COALESCE()", "Function 'COALESCE' does not accept parameters ()"),
        ("ABS('x')", "Function 'Abs' does not accept parameters (STRING)"),
        ("UCASE(v)", "Function 'ucase' does not accept parameters (INTEGER)"),
    ],
)
def test_functions_are_named_as_ksqldb_declares_them(
    engine: Engine, call: str, message: str
) -> None:
    err = refused(engine, f"CREATE STREAM x AS SELECT k, {call} AS r FROM s;")
    assert message in err.reason


@pytest.mark.parametrize("limit", [1, "2", -1])
def test_collect_limits_are_read_from_the_settings(tmp_path: Path, limit: object) -> None:
    e = Engine(
        tmp_path / "data",
        fsync="never",
        properties={
            "ksql.streams.cache.max.bytes.buffering": "0",
            "ksql.functions.collect_list.limit": limit,
            "ksql.functions.collect_set.limit": limit,
        },
    )
    try:
        e.execute(
            "CREATE STREAM s (k STRING KEY, v INT) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        e.execute(
            "CREATE TABLE c AS SELECT k, COLLECT_LIST(v) AS l, COLLECT_SET(v) AS st "
            "FROM s GROUP BY k;"
        )
        for i, v in enumerate([1, None, 1, 3]):
            e.insert("s", {"K": "a", "V": v}, timestamp=i)
        e.drain()
        last = values(e, "C")[-1]
        keep = {1: 1, "2": 2, -1: 4}[limit]  # type: ignore[index]
        assert last["L"] == [1, None, 1, 3][:keep]
        # a set keeps NULL as a value, and each value once
        assert last["ST"] == [1, None, 3][:keep]
    finally:
        e.close()


def test_collect_set_takes_two_maps_of_the_same_entries_as_one(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM m (k STRING KEY, mp MAP<STRING, INT>) "
        "WITH (kafka_topic='m', value_format='JSON', partitions=1);"
    )
    engine.execute("CREATE TABLE c AS SELECT k, COLLECT_SET(mp) AS st FROM m GROUP BY k;")
    engine.insert("m", {"K": "a", "MP": {"x": 1, "y": 2}}, timestamp=1)
    engine.insert("m", {"K": "a", "MP": {"y": 2, "x": 1}}, timestamp=2)
    engine.drain()
    assert values(engine, "C")[-1] == {"ST": [{"x": 1, "y": 2}]}


def test_single_values_are_unwrapped_as_the_settings_say(tmp_path: Path) -> None:
    e = Engine(
        tmp_path / "data",
        fsync="never",
        properties={
            "ksql.streams.cache.max.bytes.buffering": "0",
            "ksql.persistence.wrap.single.values": "false",
        },
    )
    try:
        e.execute(
            "CREATE STREAM s (k STRING KEY, foo STRING) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        e.execute("CREATE STREAM two AS SELECT k, foo, foo AS foo2 FROM s;")
        e.execute("CREATE STREAM one AS SELECT k, foo FROM s;")
        # the statement's own WRAP_SINGLE_VALUE wins over the setting
        e.execute("CREATE STREAM kept WITH (wrap_single_value=true) AS SELECT k, foo FROM s;")
        e.log.append("s", [(b"a", b'"bar"')])
        e.drain()
        assert values(e, "TWO") == [{"FOO": "bar", "FOO2": "bar"}]  # two columns: an object
        assert values(e, "ONE") == ["bar"]
        assert values(e, "KEPT") == [{"FOO": "bar"}]
    finally:
        e.close()


def test_planner_refusals_of_query_shapes(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE tt (k STRING PRIMARY KEY, v INT) "
        "WITH (kafka_topic='tt', value_format='JSON', partitions=1);"
    )
    engine.execute(
        "CREATE STREAM arr (k STRING KEY, a ARRAY<ARRAY<INT>>) "
        "WITH (kafka_topic='arr', value_format='JSON', partitions=1);"
    )
    assert (
        refused(
            engine,
            "CREATE TABLE x AS SELECT v, COUNT(*) AS n FROM tt WINDOW TUMBLING (SIZE 1 SECOND) "
            "GROUP BY v;",
        ).reason
        == "Windowing not supported for table aggregations."
    )
    assert (
        refused(engine, "CREATE STREAM x AS SELECT k, EXPLODE(EXPLODE(a)) AS y FROM arr;").reason
        == "Table functions cannot be nested: EXPLODE(EXPLODE())"
    )
    assert (
        refused(engine, "CREATE STREAM x AS SELECT k, v FROM s EMIT FINAL;").reason
        == "EMIT FINAL is only supported for windowed aggregations."
    )
    # the shapes next to them still plan
    engine.execute("CREATE TABLE ok1 AS SELECT v, COUNT(*) AS n FROM tt GROUP BY v;")
    engine.execute("CREATE STREAM ok2 AS SELECT k, EXPLODE(a) AS y FROM arr;")
    engine.execute(
        "CREATE TABLE ok3 AS SELECT k, COUNT(*) AS n FROM s WINDOW TUMBLING (SIZE 1 SECOND) "
        "GROUP BY k EMIT FINAL;"
    )


def test_window_bounds_of_a_windowed_join_aggregation_are_unresolvable(engine: Engine) -> None:
    # every joined source has the bounds after a windowed GROUP BY: ksqlDB cannot tell which
    engine.execute(
        "CREATE TABLE tj (k STRING PRIMARY KEY, x INT) "
        "WITH (kafka_topic='tj', value_format='JSON', partitions=1);"
    )
    err = refused(
        engine,
        "CREATE TABLE c AS SELECT s.k, COUNT(*) AS n, WINDOWEND AS e FROM s JOIN tj "
        "ON s.k = tj.k WINDOW TUMBLING (SIZE 10 MILLISECONDS) GROUP BY s.k;",
    )
    assert str(err) == "Line: 1, Col: 46: SELECT column 'WINDOWEND' cannot be resolved."
    engine.execute(
        "CREATE TABLE c AS SELECT s.k, COUNT(*) AS n FROM s JOIN tj ON s.k = tj.k "
        "WINDOW TUMBLING (SIZE 10 MILLISECONDS) GROUP BY s.k;"
    )
