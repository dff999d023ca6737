"""ksqlDB's analyzer rules on grouping, from its source: GROUP BY over KAFKA-format values is
refused (Analyzer.Visitor.validate), and a duplicate output column is named with its type
even when it is an aggregate (LogicalSchema's DuplicateColumnException)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    e.execute(
        "CREATE STREAM visits (visitor INT KEY, page STRING, secs INT) "
        "WITH (kafka_topic='visits', value_format='JSON', partitions=1);"
    )
    e.execute(
        "CREATE STREAM lines (host STRING KEY, line STRING) "
        "WITH (kafka_topic='lines', value_format='KAFKA', partitions=1);"
    )
    yield e
    e.close()


def refusal(engine: Engine, statement: str) -> str:
    with pytest.raises(SqlError) as info:
        engine.execute(statement)
    return str(info.value)


def test_group_by_over_kafka_values_is_refused_naming_the_source_as_aliased(
    engine: Engine,
) -> None:
    message = refusal(
        engine,
        "CREATE TABLE per_line WITH (value_format='JSON') AS "
        "SELECT l.line, COUNT(*) AS n FROM lines l GROUP BY l.line;",
    )
    assert (
        "Source(s) L are using the 'KAFKA' value format. This format does not yet support "
        "GROUP BY.\nThe KAFKA format is primarily intended for use as a key format." in message
    )
    # nothing was created, and a stateless query over the same source still runs
    assert "PER_LINE" not in engine.catalog.sources
    engine.execute("CREATE STREAM copied WITH (value_format='JSON') AS SELECT * FROM lines;")


def test_group_by_over_json_values_is_not_refused(engine: Engine) -> None:
    engine.execute("CREATE TABLE per_page AS SELECT page, COUNT(*) AS n FROM visits GROUP BY page;")


@pytest.mark.parametrize(("aggregate", "typed"), [("COUNT(*)", "BIGINT"), ("MAX(secs)", "INTEGER")])
def test_duplicate_name_of_an_aggregate_names_its_type(
    engine: Engine, aggregate: str, typed: str
) -> None:
    message = refusal(
        engine,
        f"CREATE TABLE t AS SELECT page AS total, {aggregate} AS total FROM visits GROUP BY page;",
    )
    assert f"Duplicate value columns found in schema: `TOTAL` {typed}" in message


def test_partition_key_selected_twice_is_refused_with_aliases_sorted(engine: Engine) -> None:
    message = refusal(
        engine,
        "CREATE STREAM by_page AS SELECT page AS z_page, secs, page AS a_page "
        "FROM visits PARTITION BY page;",
    )
    assert (
        "The projection contains a key column (`PAGE`) more than once, aliased as: "
        "A_PAGE and Z_PAGE.\nEach key column must only be in the projection once." in message
    )


def test_partition_key_copied_into_the_value_with_as_value_runs(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM by_page AS SELECT page, AS_VALUE(page) AS page_copy, secs "
        "FROM visits PARTITION BY page;"
    )
    source = engine.catalog.sources["BY_PAGE"]
    assert [c.name for c in source.key_columns] == ["PAGE"]
    assert [c.name for c in source.value_columns] == ["PAGE_COPY", "SECS"]


def test_key_selected_three_times_lists_every_alias(engine: Engine) -> None:
    message = refusal(
        engine,
        "CREATE STREAM again AS SELECT visitor AS c, visitor AS b, visitor AS a, page FROM visits;",
    )
    assert "key column (`VISITOR`) more than once, aliased as: A, B and C." in message


WINDOWED = "FROM visits WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS)"


def test_window_bound_inside_an_aggregate_in_where_is_an_unknown_column(engine: Engine) -> None:
    message = refusal(
        engine,
        f"CREATE TABLE t AS SELECT page, COUNT(*) AS n {WINDOWED} "
        "WHERE LATEST_BY_OFFSET(windowend) > 0 GROUP BY page;",
    )
    assert "Error in WHERE expression: Unknown column WINDOWEND." in message
    assert "Statement: (LATEST_BY_OFFSET(WINDOWEND) > 0)" in message


def test_window_bound_in_having_is_named_in_the_order_written(engine: Engine) -> None:
    message = refusal(
        engine,
        f"CREATE TABLE t AS SELECT page, COUNT(*) AS n {WINDOWED} GROUP BY page "
        "HAVING windowstart > 0 AND MAX(windowend) > 0;",
    )
    assert (
        "Window bounds column WINDOWSTART can only be used in the SELECT clause of windowed "
        "aggregations and can not be passed to aggregate functions." in message
    )


def test_window_bounds_selected_beside_a_having_still_run(engine: Engine) -> None:
    engine.execute(
        f"CREATE TABLE t AS SELECT page, COUNT(*) AS n, windowstart AS ws {WINDOWED} "
        "GROUP BY page HAVING COUNT(*) > 1;"
    )
    assert "WS" in [c.name for c in engine.catalog.sources["T"].value_columns]
