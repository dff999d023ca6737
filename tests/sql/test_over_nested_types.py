"""A Top-N's, LAG's or OVER aggregate's ORDER BY or PARTITION BY over an ARRAY, MAP or STRUCT
column is refused when the statement is planned, at that column's line and column (as a
sorted pull query's ORDER BY is), instead of a query that dies on its first rows."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

STREAM = (
    "CREATE STREAM s (id STRING KEY, g STRING, v INT, st STRUCT<x INT>, a ARRAY<INT>, "
    "m MAP<STRING, INT>) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
)
TABLE = (
    "CREATE TABLE t (id STRING PRIMARY KEY, g STRING, v INT, st STRUCT<x INT>, a ARRAY<INT>, "
    "m MAP<STRING, INT>) WITH (kafka_topic='t', value_format='JSON', partitions=1);"
)
TOPN = (
    "CREATE TABLE r WITH (key_format='JSON') AS SELECT * FROM (SELECT id, g, v, st, a, "
    "ROW_NUMBER() OVER (PARTITION BY {p} ORDER BY {o} DESC) AS rn FROM {src}) WHERE rn <= 3;"
)

CASES = [
    # (statement, the refused column, what is refused)
    (TOPN.format(p="g", o="st", src="t"), "st", "ORDER BY cannot sort ST, of type STRUCT"),
    (TOPN.format(p="g", o="m", src="s"), "m", "ORDER BY cannot sort M, of type MAP"),
    (TOPN.format(p="g", o="a", src="t"), "a", "ORDER BY cannot sort A, of type ARRAY"),
    (TOPN.format(p="st", o="v", src="t"), "st", "PARTITION BY cannot partition by ST"),
    (TOPN.format(p="a", o="v", src="s"), "a", "PARTITION BY cannot partition by A"),
    (
        "CREATE TABLE o AS SELECT id, SUM(v) OVER (PARTITION BY g ORDER BY st "
        "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS x FROM t;",
        "st",
        "ORDER BY cannot sort ST",
    ),
    (
        "CREATE TABLE o AS SELECT id, SUM(v) OVER (PARTITION BY st ORDER BY v "
        "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS x FROM t;",
        "st",
        "PARTITION BY cannot partition by ST",
    ),
    (
        "CREATE STREAM l AS SELECT id, LAG(st) OVER (PARTITION BY m ORDER BY ROWTIME) AS x FROM s;",
        "m ORDER",
        "PARTITION BY cannot partition by M, of type MAP",
    ),
]


@pytest.fixture
def engine() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as tmp:
        e = Engine(Path(tmp) / "data", fsync="never")
        try:
            e.execute(STREAM + TABLE)
            yield e
        finally:
            e.close()


@pytest.mark.parametrize(("statement", "column", "message"), CASES)
def test_a_nested_column_is_refused_at_its_place(
    engine: Engine, statement: str, column: str, message: str
) -> None:
    with pytest.raises(SqlError) as err:
        engine.execute(statement)
    assert message in str(err.value)
    assert err.value.line == 1
    # the column's own place: after "BY " in the statement
    assert err.value.column == statement.index(f"BY {column}") + len("BY ") + 1
    assert engine.execute("SHOW QUERIES;")[0].rows == []  # nothing was started
