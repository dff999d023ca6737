"""A LIMIT or PRINT INTERVAL past BIGINT's range is refused at the literal's line and column,
as the same literal in WHERE is (before: a Python OverflowError or ValueError, HTTP 500)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError


@pytest.mark.parametrize(
    ("sql", "column"),
    [
        ("SELECT * FROM t LIMIT 9223372036854775808;", 23),
        ("PRINT 't' INTERVAL 99999999999999999999999 LIMIT 1;", 20),
    ],
)
def test_a_huge_literal_is_refused_at_its_place(tmp_path: Path, sql: str, column: int) -> None:
    engine = Engine(tmp_path / "data", fsync="never")
    try:
        engine.execute(
            "CREATE TABLE t (k INT PRIMARY KEY, v INT) "
            "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
        )
        with pytest.raises(SqlError, match="Invalid numeric literal") as caught:
            engine.execute(sql)
        assert (caught.value.line, caught.value.column) == (1, column)
    finally:
        engine.close()
