"""Flink's `INSERT INTO sink (c1, c2) SELECT ...`: the query's columns fill the listed
columns by name, the ones left out are NULL; outputs decoded with `json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

SRC = (
    "CREATE TABLE src (id BIGINT, price INT, note STRING) WITH ('connector' = 'kafka', "
    "'topic' = 'src', 'format' = 'json', 'partitions' = '1');"
    "CREATE TABLE snk (id BIGINT, price INT, note STRING) WITH ('connector' = 'blackhole');"
)


def test_a_column_list_maps_the_query_by_name(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(SRC)
        engine.execute("INSERT INTO snk (price, id) SELECT price, id FROM src;")
        engine.execute("INSERT INTO src (id, price, note) VALUES (1, 7, 'n');")
        engine.drain()
        values = engine.log.read_table("SNK", 0).column("value").to_pylist()
        assert [json.loads(v) for v in values] == [{"ID": 1, "PRICE": 7, "NOTE": None}]
        columns = {c.name: str(c.type) for c in engine.catalog.sources["SNK"].value_columns}
        assert columns == {"ID": "BIGINT", "PRICE": "INTEGER", "NOTE": "STRING"}


@pytest.mark.parametrize(
    ("statement", "words"),
    [
        ("INSERT INTO snk\n  (price, nosuch) SELECT price, id FROM src;", "NOSUCH is not a column"),
        ("INSERT INTO snk\n  (price, price) SELECT price, id FROM src;", "PRICE is listed twice"),
        ("INSERT INTO snk\n  (price, id) SELECT price FROM src;", "the query must give as many"),
        ("INSERT INTO plain\n  (id) SELECT id FROM src;", "is Flink's, for a sink declared"),
    ],
)
def test_a_wrong_column_list_is_refused_at_its_place(
    tmp_path: Path, statement: str, words: str
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            SRC + "CREATE STREAM plain (id BIGINT) WITH (kafka_topic='plain', "
            "value_format='JSON', partitions=1);"
        )
        with pytest.raises(SqlError, match=words) as err:
            engine.execute(statement)
        assert (err.value.line, err.value.column) == (2, 3)
        assert not engine.tasks
