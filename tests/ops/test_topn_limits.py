"""A Top-N over a table keeps at most `query.topn.table.max.rows` rows a partition: an N
above that could not be given once a partition grows past it, so such a query is refused
when it is made, naming the setting (it was accepted and then gave fewer ranks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

TABLE = (
    "CREATE TABLE t (id STRING PRIMARY KEY, region STRING, x INT) "
    "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
)


def _top(name: str, n: int) -> str:
    return (
        f"CREATE TABLE {name} WITH (key_format='JSON') AS SELECT * FROM (SELECT id, region, x, "
        "ROW_NUMBER() OVER (PARTITION BY region ORDER BY x DESC) AS rn FROM t) "
        f"WHERE rn <= {n};"
    )


def test_a_table_top_n_past_the_rows_kept_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(TABLE)
        engine.execute(_top("top_small", 100_000))  # the default bound itself is fine
        with pytest.raises(SqlError, match=r"\(query\.topn\.table\.max\.rows\)") as err:
            engine.execute(_top("top_big", 100_001))
        assert "100,001 ranks" in str(err.value)
        assert err.value.line == 1
        engine.execute("SET 'query.topn.table.max.rows' = '200000';")
        engine.execute(_top("top_big", 150_000))
        engine.insert("t", {"ID": "a", "REGION": "n", "X": 1})
        engine.insert("t", {"ID": "b", "REGION": "n", "X": 2})
        engine.drain()
        rows = sorted((r["ID"], r["RN"]) for r in engine.query("SELECT * FROM top_big;"))
        assert rows == [("a", 2), ("b", 1)]
