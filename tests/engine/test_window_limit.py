"""The bound on windows per row (`query.window.max.per.row`): HOP, CUMULATE and ksqlDB's
WINDOW HOPPING with a tiny slide are refused when the statement is made, at their place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError
from hispeed.log.base import Record


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    e.execute(
        "CREATE STREAM sc (g STRING, v INT) WITH (kafka_topic='sc', value_format='JSON', "
        "partitions=1);"
    )
    yield e
    e.close()


_TVF = "TABLE({}(TABLE sc, DESCRIPTOR(ROWTIME), INTERVAL '1' MILLISECOND, INTERVAL '1' DAY))"

CASES = [
    (
        "CREATE STREAM h AS SELECT * FROM\n  " + _TVF.format("HOP") + ";",
        (2, 9),
        "HOP puts each row in 86,400,000 windows",
    ),
    (
        "CREATE STREAM h AS SELECT * FROM\n  " + _TVF.format("CUMULATE") + ";",
        (2, 9),
        "CUMULATE puts each row in 86,400,000 windows",
    ),
    (
        "CREATE TABLE h AS SELECT window_start, window_end, g, COUNT(*) AS n\nFROM "
        + _TVF.format("HOP")
        + " GROUP BY window_start, window_end, g;",
        (2, 12),
        "HOP puts each row in 86,400,000 windows",
    ),
    (
        "CREATE TABLE h AS SELECT g, COUNT(*) AS n FROM sc\n"
        "  WINDOW HOPPING (SIZE 1 DAY, ADVANCE BY 1 MILLISECOND) GROUP BY g;",
        (2, 3),
        "WINDOW HOPPING puts each row in 86,400,000 windows",
    ),
]


@pytest.mark.parametrize(("sql", "place", "message"), CASES)
def test_too_many_windows_per_row_is_refused_at_its_place(
    engine: Engine, sql: str, place: tuple[int, int], message: str
) -> None:
    with pytest.raises(SqlError) as err:
        engine.execute(sql)
    assert (err.value.line, err.value.column) == place
    assert message in str(err.value)
    assert "query.window.max.per.row" in str(err.value)
    assert "H" not in engine.catalog.sources
    assert not engine.tasks


def test_the_setting_raises_and_lowers_the_bound(engine: Engine) -> None:
    # 1,000 windows a row: under the default, over a bound of 500 given with the statement
    hop = (
        "CREATE STREAM {} AS SELECT * FROM TABLE(HOP(TABLE sc, DESCRIPTOR(ROWTIME), "
        "INTERVAL '1' MILLISECOND, INTERVAL '1' SECOND));"
    )
    with pytest.raises(SqlError, match="1,000 windows"):
        engine.execute(hop.format("low"), properties={"query.window.max.per.row": "500"})
    engine.execute(hop.format("h"))
    engine.log.append("sc", [Record(json.dumps({"G": "a", "V": 1}).encode(), None, 5000)])
    engine.drain()
    assert engine.log.read_table("H", 0).num_rows == 1000
    with pytest.raises(HispeedError, match=r"query\.window\.max\.per\.row must be a whole number"):
        engine.execute(hop.format("bad"), properties={"query.window.max.per.row": "0"})
