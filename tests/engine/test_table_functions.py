"""Table functions in persistent queries: EXPLODE, CUBE_EXPLODE, zipping, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime.task import PROCESSING_LOG


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    e.execute(
        "CREATE STREAM orders (id STRING KEY, items ARRAY<STRING>, qty ARRAY<INT>, n INT) "
        "WITH (kafka_topic='orders', value_format='JSON', partitions=1);"
    )
    yield e
    e.close()


def values(engine: Engine, topic: str) -> list[tuple[Any, Any]]:
    return [
        (r["key"].decode() if r["key"] else None, json.loads(r["value"]))
        for r in engine.log.read_table(topic, 0).to_pylist()
    ]


def test_explode_gives_a_row_per_element_and_zips_several(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM lines AS SELECT id, EXPLODE(items) AS item, EXPLODE(qty) AS q, n "
        "FROM orders WHERE n > 0;"
    )
    engine.insert("orders", {"ID": "o1", "ITEMS": ["tea", "jam", "cake"], "QTY": [2, 1], "N": 1})
    engine.insert("orders", {"ID": "o2", "ITEMS": [], "QTY": None, "N": 5})  # gives no rows
    engine.insert("orders", {"ID": "o3", "ITEMS": ["pie"], "QTY": [4], "N": 0})  # filtered out
    engine.drain()
    assert values(engine, "LINES") == [
        ("o1", {"ITEM": "tea", "Q": 2, "N": 1}),
        ("o1", {"ITEM": "jam", "Q": 1, "N": 1}),
        ("o1", {"ITEM": "cake", "Q": None, "N": 1}),  # the shorter array is padded with NULL
    ]


def test_cube_explode_gives_every_combination_once(engine: Engine) -> None:
    engine.execute("CREATE STREAM cubes AS SELECT id, CUBE_EXPLODE(qty) AS c FROM orders;")
    engine.insert("orders", {"ID": "o1", "ITEMS": [], "QTY": [1, None], "N": 1})
    engine.drain()
    assert [v["C"] for _, v in values(engine, "CUBES")] == [[None, None], [1, None]]
    assert engine.log.offsets(PROCESSING_LOG, 0)[1] == 0


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "CREATE TABLE t AS SELECT n, EXPLODE(items), COUNT(*) FROM orders GROUP BY n;",
            "Table functions cannot be used with aggregations.",
        ),
        ("CREATE STREAM s AS SELECT id, EXPLODE(n) FROM orders;", "It takes one ARRAY"),
    ],
)
def test_table_function_errors(engine: Engine, statement: str, message: str) -> None:
    with pytest.raises(HispeedError) as err:
        engine.execute(statement)
    assert message in str(err.value)


def test_table_functions_do_not_take_table_sources(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE carts (id STRING PRIMARY KEY, items ARRAY<STRING>) "
        "WITH (kafka_topic='carts', value_format='JSON', partitions=1);"
    )
    with pytest.raises(HispeedError, match="Table source is not supported with table functions"):
        engine.execute("CREATE TABLE x AS SELECT id, EXPLODE(items) FROM carts;")
