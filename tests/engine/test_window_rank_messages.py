"""Window Top-N's errors name the window columns as the user wrote them, never the
expressions of ROWTIME the planner turns them into."""

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
        "CREATE STREAM bid (bidder STRING, price INT, dt BIGINT) WITH (kafka_topic='bid', "
        "value_format='JSON', timestamp='dt', partitions=1);"
    )
    yield e
    e.close()


def _ranked(outer: str, order: str = "price DESC") -> str:
    return (
        f"CREATE TABLE p WITH (key_format='JSON') AS SELECT {outer} FROM (\n"
        "  SELECT window_start, window_end, bidder, price, dt,\n"
        f"    ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY {order}) AS rn\n"
        "  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dt), INTERVAL '10' SECONDS))) WHERE rn <= 1;"
    )


@pytest.mark.parametrize(
    ("outer", "missing", "column"),
    [("bidder, price", "WINDOW_START", 37), ("window_start, bidder, price", "WINDOW_END", 51)],
)
def test_a_window_column_left_out_of_the_outer_query_is_named(
    engine: Engine, outer: str, missing: str, column: int
) -> None:
    with pytest.raises(SqlError) as err:
        engine.execute(_ranked(outer))
    message = str(err.value)
    assert f"select {missing} in the outer query" in message
    assert "ROWTIME" not in message
    assert (err.value.line, err.value.column) == (3, column)


def test_an_unknown_order_by_column_lists_the_window_columns(engine: Engine) -> None:
    with pytest.raises(SqlError) as err:
        engine.execute(_ranked("*", "nosuch DESC"))
    message = str(err.value)
    assert "ORDER BY column 'NOSUCH' cannot be resolved" in message
    listed = message.split("The columns here are: ")[1].split(", ")
    assert {"BIDDER", "PRICE", "DT", "WINDOW_START", "WINDOW_END", "WINDOW_TIME"} <= set(listed)
    assert (err.value.line, err.value.column) == (3, 71)
