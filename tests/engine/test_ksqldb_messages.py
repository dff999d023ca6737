"""More of ksqlDB's refusals and semantics, each read from its source (the class named in
the test's docstring) and checked through the public engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    yield e
    e.close()


def error_of(engine: Engine, statement: str) -> str:
    """The message of the error `statement` is refused with."""
    with pytest.raises(HispeedError) as info:
        engine.execute(statement)
    return str(info.value)


@pytest.mark.parametrize("kind", ["STREAM", "TABLE"])
def test_insert_values_into_a_source_only_source(engine: Engine, kind: str) -> None:
    """InsertValuesExecutor.getDataSource: a CREATE SOURCE stream/table is read-only."""
    key = "PRIMARY KEY" if kind == "TABLE" else "KEY"
    engine.execute(
        f"CREATE SOURCE {kind} src (k INT {key}, v INT) "
        "WITH (kafka_topic='src', value_format='JSON', partitions=1);"
    )
    message = error_of(engine, "INSERT INTO src (k, v) VALUES (1, 2);")
    assert message.endswith(f"Cannot insert values into read-only {kind.lower()}: SRC")


def test_insert_values_into_a_windowed_source(engine: Engine) -> None:
    """InsertValuesExecutor.getDataSource refuses windowed sources before anything else."""
    engine.execute(
        "CREATE STREAM w (k INT KEY, v INT) WITH (kafka_topic='w', value_format='JSON', "
        "window_type='TUMBLING', window_size='1 SECOND', partitions=1);"
    )
    message = error_of(engine, "INSERT INTO w (k, v) VALUES (1, 2);")
    assert message.endswith("Cannot insert values into windowed stream/table!")


def test_insert_values_without_columns_into_a_source_with_headers(engine: Engine) -> None:
    """InsertValuesExecutor.validateInsert: with no column list every header column is a
    target, refused before the values are counted."""
    engine.execute(
        "CREATE STREAM h (k INT KEY, v INT, h1 BYTES HEADER('a')) "
        "WITH (kafka_topic='h', value_format='JSON', partitions=1);"
    )
    assert "Cannot insert into HEADER columns: H1" in error_of(
        engine, "INSERT INTO h VALUES (1, 2, 3);"
    )
    engine.execute("INSERT INTO h (k, v) VALUES (1, 2);")


def test_a_window_without_group_by_over_aggregates_is_an_aggregation(engine: Engine) -> None:
    """LogicalPlanner refuses a WINDOW without GROUP BY only when nothing is aggregated; with
    an aggregate the query is an aggregation and AggregateAnalyzer's rule speaks."""
    engine.execute(
        "CREATE STREAM s (id STRING KEY, v STRING) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    message = error_of(
        engine,
        "CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s "
        "WINDOW TUMBLING (SIZE 2 MILLISECONDS) EMIT FINAL;",
    )
    assert "Non-aggregate SELECT expression(s) not part of GROUP BY: ID" in message
    message = error_of(
        engine, "CREATE STREAM u AS SELECT id FROM s WINDOW TUMBLING (SIZE 2 MILLISECONDS);"
    )
    assert message.endswith("WINDOW clause requires a GROUP BY clause.")


def test_a_windowed_source_needs_a_key_column(engine: Engine) -> None:
    """CreateSourceCommand.validate: a windowed source without key columns is refused."""
    message = error_of(
        engine,
        "CREATE STREAM w (f0 INT) WITH (kafka_topic='w', value_format='JSON', "
        "window_type='SESSION', partitions=1);",
    )
    assert message.endswith("Windowed sources require a key column.")


def test_an_unknown_qualifier_of_a_star_in_a_join(engine: Engine) -> None:
    """AstBuilder.visitSelectAll refuses `x.*` whose x names no source or alias of the
    statement, joins as single sources."""
    for name in ("a", "b"):
        engine.execute(
            f"CREATE STREAM {name} (k STRING KEY, f0 INT) "
            f"WITH (kafka_topic='{name}', value_format='JSON', partitions=1);"
        )
    message = error_of(
        engine,
        "CREATE STREAM o AS SELECT unknown.* FROM a x JOIN b y WITHIN 10 SECONDS ON x.k = y.k;",
    )
    assert "'UNKNOWN' is not a valid stream/table name or alias." in message
