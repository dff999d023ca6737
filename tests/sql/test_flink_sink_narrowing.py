"""INSERT INTO a Flink sink of a narrower number type is refused, as Flink refuses any cast
that is not an implicit widening ("Incompatible types for sink column ...")."""

from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

SRC = (
    "CREATE TABLE src (id BIGINT, price INT, big BIGINT, d DOUBLE) WITH ('connector' = "
    "'kafka', 'topic' = 'src', 'format' = 'json', 'partitions' = '1');"
    "CREATE TABLE snk (id BIGINT, price INT) WITH ('connector' = 'blackhole');"
)


@pytest.mark.parametrize(
    ("expr", "given"),
    [
        ("big", "BIGINT"),
        ("CAST(big AS BIGINT)", "BIGINT"),
        ("d", "DOUBLE"),
        ("price + d", "DOUBLE"),
    ],
)
def test_a_narrowing_into_an_int_column_is_refused(tmp_path: Path, expr: str, given: str) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(SRC)
        with pytest.raises(SqlError) as err:
            engine.execute(f"INSERT INTO snk SELECT id,\n  {expr} FROM src;")
        assert "Incompatible types for sink column 'PRICE' at position 1" in str(err.value)
        assert f"the query gives {given}, the sink declares INTEGER" in str(err.value)
        assert (err.value.line, err.value.column) == (2, 3)
        assert "SNK" not in engine.catalog.sources
        assert not engine.tasks


def test_the_same_type_and_widenings_are_taken(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            SRC + "CREATE TABLE wide (id BIGINT, q DOUBLE) WITH ('connector' = 'blackhole');"
        )
        engine.execute("INSERT INTO snk SELECT id, price FROM src;")
        engine.execute("INSERT INTO wide SELECT id, big FROM src;")
        types = {
            name: {c.name: str(c.type) for c in engine.catalog.sources[name].value_columns}
            for name in ("SNK", "WIDE")
        }
        assert types == {
            "SNK": {"ID": "BIGINT", "PRICE": "INTEGER"},
            "WIDE": {"ID": "BIGINT", "Q": "DOUBLE"},
        }
