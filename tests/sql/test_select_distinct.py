"""SELECT DISTINCT is refused at its place with what to write instead (adversarial findings,
section 14: it was read as a column named DISTINCT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError


def test_select_distinct_is_refused_at_its_place(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE STREAM s (k INT, v INT) WITH (kafka_topic='s', value_format='JSON', "
            "partitions=1);"
        )
        with pytest.raises(SqlError, match="SELECT DISTINCT is not supported: GROUP BY") as e:
            engine.execute("CREATE TABLE t AS\n  SELECT DISTINCT k, v FROM s;")
        assert (e.value.line, e.value.column) == (2, 10)
