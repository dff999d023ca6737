"""AVG/SUM/COUNT/MIN/MAX OVER (PARTITION BY ... ORDER BY time ROWS | RANGE ... PRECEDING AND
CURRENT ROW) over a stream: one result per row as it arrives, compared with DuckDB's window
aggregates over the same rows (decoded with `json`, not hispeed), across batches and a
restart; the shapes that cannot be computed as rows arrive refused at their line and column."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

STREAM = (
    "CREATE STREAM s (k STRING KEY, g STRING, v BIGINT, x DOUBLE, t BIGINT) WITH "
    "(kafka_topic='s', partitions=1, value_format='JSON', timestamp='t');"
)
QUERY = (
    "CREATE STREAM o AS SELECT k, g, v, "
    "AVG(v) OVER (PARTITION BY g ORDER BY t ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS a3, "
    "SUM(v) OVER (PARTITION BY g ORDER BY t ROWS 2 PRECEDING) AS s2, "
    "COUNT(*) OVER (PARTITION BY g ORDER BY t RANGE BETWEEN INTERVAL '40' MILLISECONDS "
    "PRECEDING AND CURRENT ROW) AS c40, "
    "MAX(x) OVER (PARTITION BY g ORDER BY t RANGE BETWEEN INTERVAL '40' MILLISECONDS "
    "PRECEDING AND CURRENT ROW) AS m40, "
    "MIN(x) OVER (PARTITION BY g ORDER BY t ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
    "AS lo, COUNT(x) OVER (PARTITION BY g ORDER BY t) AS n "
    "FROM s WHERE v % 7 <> 0 EMIT CHANGES;"
)


def _append(engine: Engine, rows: list[dict[str, Any]]) -> None:
    engine.log.append("s", [(r["K"].encode(), json.dumps(r).encode()) for r in rows])
    engine.drain()


def test_framed_aggregates_match_duckdb_across_batches_and_a_restart(tmp_path: Path) -> None:
    rng = random.Random(6)
    rows: list[dict[str, Any]] = []
    t = 1000
    for i in range(400):
        t += rng.randrange(1, 15)  # no two rows at one time: RANGE's peers are not in play
        x = None if rng.random() < 0.1 else round(rng.uniform(-50, 50), 3)
        rows.append(
            {"K": f"k{i}", "G": f"g{rng.randrange(3)}", "V": rng.randrange(100), "X": x, "T": t}
        )
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(QUERY)
        for start in range(0, 200, 13):
            _append(engine, rows[start : min(start + 13, 200)])
    with Engine(tmp_path / "data") as engine:  # the state comes back from the changelog
        for start in range(200, 400, 19):
            _append(engine, rows[start : start + 19])
        out = engine.log.read_table("O", 0).to_pylist()
    got = [(r["key"].decode(), *json.loads(r["value"]).values()) for r in out]
    s = DUCK.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(
            f"('{r['K']}', '{r['G']}', {r['V']}, {'NULL' if r['X'] is None else r['X']}::DOUBLE, "
            f"{r['T']})"
            for r in rows
        )
        + ") as t(k, g, v, x, t)"
    )
    expected = DUCK.sql(
        "select k, g, v, avg(v) over (w rows between 3 preceding and current row), "
        "sum(v) over (w rows between 2 preceding and current row), "
        "count(*) over (w range between 40 preceding and current row), "
        "max(x) over (w range between 40 preceding and current row), "
        "min(x) over (w rows between unbounded preceding and current row), "
        "count(x) over w from s where v % 7 <> 0 "
        "window w as (partition by g order by t) order by t"
    ).fetchall()
    assert len(expected) > 300
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[:3] == theirs[:3]
        assert mine[3] == pytest.approx(theirs[3])
        assert mine[4:] == tuple(theirs[4:]), (mine, theirs)


def test_a_row_out_of_order_is_dropped_and_logged(tmp_path: Path) -> None:
    query = (
        "CREATE STREAM o AS SELECT k, SUM(v) OVER (PARTITION BY g ORDER BY t RANGE BETWEEN "
        "INTERVAL '1' SECOND PRECEDING AND CURRENT ROW) AS s FROM s EMIT CHANGES;"
    )
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(query)
        _append(engine, [{"K": "a", "G": "x", "V": 1, "X": 0, "T": 2000}])
        _append(
            engine,
            [
                {"K": "b", "G": "x", "V": 2, "X": 0, "T": 1500},
                {"K": "c", "G": "x", "V": 3, "X": 0, "T": 2999},
                {"K": "d", "G": "x", "V": 4, "X": 0, "T": 3001},
            ],
        )
        out = [json.loads(v) for v in engine.log.read_table("O", 0).column("value").to_pylist()]
        log = engine.log.read_table("hispeed_processing_log", 0).column("value").to_pylist()
    # d's second reaches back to 2001: a (at 2000) has left it
    assert [r["S"] for r in out] == [1, 4, 7]
    assert "out of order" in json.loads(log[-1])["message"]


ERRORS = [
    (
        "SELECT k, AVG(v) OVER (PARTITION BY g ORDER BY t ROWS BETWEEN 1 FOLLOWING AND "
        "CURRENT ROW) FROM s EMIT CHANGES;",
        "FOLLOWING",
        "a frame ends at the current row",
    ),
    (
        "SELECT k, AVG(v) OVER (PARTITION BY g ORDER BY t ROWS BETWEEN 1 PRECEDING AND "
        "1 FOLLOWING) FROM s EMIT CHANGES;",
        "1 FOLLOWING",
        "CURRENT ROW",
    ),
    (
        "SELECT k, AVG(v) OVER (PARTITION BY g ORDER BY v ROWS 2 PRECEDING) FROM s EMIT CHANGES;",
        "AVG",
        "ORDER BY ROWTIME or T",
    ),
    (
        "SELECT k, SUM(k) OVER (PARTITION BY g ORDER BY t ROWS 2 PRECEDING) FROM s EMIT CHANGES;",
        "k) OVER",
        "takes a number",
    ),
    (
        "SELECT k, LAG(v) OVER (PARTITION BY g ORDER BY t ROWS 2 PRECEDING) FROM s EMIT CHANGES;",
        "ROWS",
        "not supported for LAG",
    ),
    (
        "SELECT k, AVG(v) OVER (PARTITION BY g ORDER BY t ROWS 2 PRECEDING), "
        "SUM(v) OVER (PARTITION BY k ORDER BY t ROWS 2 PRECEDING) FROM s EMIT CHANGES;",
        "SUM",
        "share one PARTITION BY and ORDER BY",
    ),
    (
        "SELECT g, COUNT(*), AVG(v) OVER (PARTITION BY g ORDER BY t ROWS 2 PRECEDING) FROM s "
        "GROUP BY g EMIT CHANGES;",
        "AVG(v) OVER",
        "cannot be used with GROUP BY",
    ),
]


@pytest.mark.parametrize(("text", "marker", "says"), ERRORS)
def test_unsupported_frames_are_refused_where_they_are(
    tmp_path: Path, text: str, marker: str, says: str
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        with pytest.raises(SqlError) as err:
            engine.stream(text)
    assert says in str(err.value)
    assert (err.value.line, err.value.column) == (1, text.index(marker) + 1), str(err.value)
