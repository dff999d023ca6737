"""Top-N with a NULL PARTITION BY value: SQL ranks the NULL partition as any other, so its
rank-1 row is a row of the result, also when the result is keyed by the one PARTITION BY
column alone (rn = 1, the rank left out). Compared with DuckDB over the same rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine

ROWS: list[dict[str, Any]] = [
    {"K": "a", "G": None, "V": 5, "T": 1},
    {"K": "b", "G": "x", "V": 3, "T": 2},
    {"K": "c", "G": None, "V": 9, "T": 3},
    {"K": "d", "G": "x", "V": 4, "T": 4},
    {"K": "e", "G": None, "V": 1, "T": 5},
]


def _duckdb(select: str, bound: str) -> set[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE s (k VARCHAR, g VARCHAR, v BIGINT, t BIGINT, pos INTEGER)")
    con.executemany(
        "INSERT INTO s VALUES (?, ?, ?, ?, ?)",
        [(r["K"], r["G"], r["V"], r["T"], i) for i, r in enumerate(ROWS)],
    )
    got = con.execute(
        f"SELECT {select} FROM (SELECT g, k, v, ROW_NUMBER() OVER (PARTITION BY g "
        f"ORDER BY v DESC, pos) AS rn FROM s) WHERE {bound}"
    ).fetchall()
    con.close()
    return set(got)


@pytest.mark.parametrize(
    ("select", "bound"),
    [("g, k, v", "rn = 1"), ("g, k, v, rn", "rn = 1"), ("g, k, v, rn", "rn <= 2")],
)
def test_the_null_partition_is_ranked_as_sql_ranks_it(
    tmp_path: Path, select: str, bound: str
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE STREAM s (k STRING KEY, g STRING, v BIGINT, t BIGINT) WITH "
            "(kafka_topic='s', partitions=1, value_format='JSON', timestamp='t');"
        )
        engine.execute(
            f"CREATE TABLE top WITH (key_format='JSON') AS SELECT {select} FROM (SELECT g, k, "
            "v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v DESC) AS rn FROM s) "
            f"WHERE {bound} EMIT CHANGES;"
        )
        # two batches: the NULL partition's row is replaced by a better one in the second
        for part in (ROWS[:2], ROWS[2:]):
            engine.log.append("s", [(r["K"].encode(), json.dumps(r).encode()) for r in part])
            engine.drain()
        names = [c.strip().upper() for c in select.split(",")]
        rows = engine.execute("SELECT * FROM top;")[0].rows
        got = {tuple(r[n] for n in names) for r in rows}
    assert got == _duckdb(select, bound)
    assert any(r[0] is None for r in got)
