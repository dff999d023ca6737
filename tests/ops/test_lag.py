"""LAG(value, offset, default) OVER (PARTITION BY ... ORDER BY time) over a stream, compared
with DuckDB's lag() over the same rows (decoded with `json`, not hispeed), across batches and
a restart; LEAD written as each row's successors arrive; the other shapes refused at their
line and column."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

STREAM = (
    "CREATE STREAM s (k STRING KEY, g STRING, v BIGINT, t BIGINT) WITH (kafka_topic='s', "
    "partitions=1, value_format='JSON', timestamp='t');"
)
QUERY = (
    "CREATE STREAM o AS SELECT k, g, v, LAG(v) OVER (PARTITION BY g ORDER BY t) AS prev, "
    "v - LAG(v, 3, 0) OVER (PARTITION BY g ORDER BY t) AS d3 FROM s WHERE v % 5 <> 0 "
    "EMIT CHANGES;"
)


def _append(engine: Engine, rows: list[dict[str, Any]]) -> None:
    engine.log.append("s", [(r["K"].encode(), json.dumps(r).encode()) for r in rows])
    engine.drain()


def test_lag_matches_duckdb_across_batches_and_a_restart(tmp_path: Path) -> None:
    rng = random.Random(4)
    # in time order, ties included (they keep their arrival order, as DuckDB's pos does)
    rows = [
        {"K": f"k{i}", "G": f"g{rng.randrange(4)}", "V": rng.randrange(100), "T": 1000 + i // 2}
        for i in range(300)
    ]
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(QUERY)
        for start in range(0, 150, 11):
            _append(engine, rows[start : min(start + 11, 150)])
    with Engine(tmp_path / "data") as engine:  # the state comes back from the changelog
        for start in range(150, 300, 17):
            _append(engine, rows[start : start + 17])
        out = engine.log.read_table("O", 0).to_pylist()
    got = [(r["key"].decode(), *json.loads(r["value"]).values()) for r in out]
    data = [{**r, "POS": i} for i, r in enumerate(rows)]
    s = DUCK.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"('{r['K']}', '{r['G']}', {r['V']}, {r['T']}, {r['POS']})" for r in data)
        + ") as t(k, g, v, t, pos)"
    )
    expected = DUCK.sql(
        "select k, g, v, lag(v) over w, v - lag(v, 3, 0) over w from s where v % 5 <> 0 "
        "window w as (partition by g order by t, pos) order by pos"
    ).fetchall()
    assert len(expected) > 200
    assert got == [tuple(r) for r in expected]


def test_a_row_out_of_order_is_dropped_and_logged(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(QUERY)
        _append(engine, [{"K": "a", "G": "x", "V": 1, "T": 20}])
        _append(
            engine, [{"K": "b", "G": "x", "V": 2, "T": 10}, {"K": "c", "G": "x", "V": 3, "T": 30}]
        )
        out = [json.loads(v) for v in engine.log.read_table("O", 0).column("value").to_pylist()]
        log = engine.log.read_table("hispeed_processing_log", 0).column("value").to_pylist()
    assert [(r["V"], r["PREV"]) for r in out] == [(1, None), (3, 1)]
    assert "out of order" in json.loads(log[-1])["message"]


def test_lead_writes_each_row_when_its_successors_arrive(tmp_path: Path) -> None:
    """LEAD(v, 2) holds a row until the second row after it in its partition arrives: every
    row with two successors is written with DuckDB's lead() values (LAG beside it), the
    partitions' last two rows are not (yet), across batches and a restart."""
    rng = random.Random(5)
    rows = [
        {"K": f"k{i}", "G": f"g{rng.randrange(4)}", "V": rng.randrange(100), "T": 1000 + i // 2}
        for i in range(300)
    ]
    query = (
        "CREATE STREAM o AS SELECT k, g, v, LEAD(v) OVER (PARTITION BY g ORDER BY t) AS n1, "
        "LEAD(v, 2) OVER (PARTITION BY g ORDER BY t) AS n2, "
        "LAG(v) OVER (PARTITION BY g ORDER BY t) AS p1 FROM s WHERE v % 5 <> 0 EMIT CHANGES;"
    )
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(query)
        for start in range(0, 150, 11):
            _append(engine, rows[start : min(start + 11, 150)])
        early = engine.log.read_table("O", 0).num_rows
    with Engine(tmp_path / "data") as engine:  # the held rows come back from the changelog
        for start in range(150, 300, 17):
            _append(engine, rows[start : start + 17])
        out = engine.log.read_table("O", 0).to_pylist()
    got = sorted((r["key"].decode(), *json.loads(r["value"]).values()) for r in out)
    data = [{**r, "POS": i} for i, r in enumerate(rows)]
    s = DUCK.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"('{r['K']}', '{r['G']}', {r['V']}, {r['T']}, {r['POS']})" for r in data)
        + ") as t(k, g, v, t, pos)"
    )
    expected = DUCK.sql(
        "select k, g, v, n1, n2, p1 from (select k, g, v, lead(v) over w as n1, "
        "lead(v, 2) over w as n2, lag(v) over w as p1, count(*) over (w rows between 1 "
        "following and unbounded following) as after from s where v % 5 <> 0 "
        "window w as (partition by g order by t, pos)) where after >= 2 order by k"
    ).fetchall()
    assert 0 < early < len(expected)
    assert len(expected) > 200
    assert got == sorted(tuple(r) for r in expected)


ERRORS = [
    (
        "SELECT k, LEAD(v, 1, 0) OVER (PARTITION BY g ORDER BY t) AS n FROM s EMIT CHANGES;",
        "0)",
        "LEAD over a stream takes no default",
    ),
    (
        "SELECT k, LAG(v) OVER (PARTITION BY g ORDER BY v) AS p FROM s EMIT CHANGES;",
        "LAG",
        "ORDER BY ROWTIME or T",
    ),
    (
        "SELECT k, LAG(v) OVER (PARTITION BY g ORDER BY t DESC) AS p FROM s EMIT CHANGES;",
        "LAG",
        "ascending",
    ),
    (
        "SELECT k, LAG(v, 0) OVER (PARTITION BY g ORDER BY t) AS p FROM s EMIT CHANGES;",
        "0)",
        "whole number above 0",
    ),
    (
        # a partition would wait for (LEAD) or keep (LAG) that many rows: the offset is bounded
        "SELECT k, LEAD(v, 100000001) OVER (PARTITION BY g ORDER BY t) AS n FROM s EMIT CHANGES;",
        "100000001)",
        "at most 100,000 are allowed (query.over.max.rows)",
    ),
    (
        "SELECT k FROM s WHERE LAG(v) OVER (PARTITION BY g ORDER BY t) > 1 EMIT CHANGES;",
        "LAG",
        "is not supported here",
    ),
    (
        "SELECT g, COUNT(*), LAG(v) OVER (PARTITION BY g ORDER BY t) FROM s GROUP BY g "
        "EMIT CHANGES;",
        "LAG",
        "cannot be used with GROUP BY",
    ),
]


@pytest.mark.parametrize(("text", "marker", "says"), ERRORS)
def test_unsupported_lag_shapes_are_refused_where_they_are(
    tmp_path: Path, text: str, marker: str, says: str
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        with pytest.raises(SqlError) as err:
            engine.stream(text)
    assert says in str(err.value)
    assert (err.value.line, err.value.column) == (1, text.index(marker) + 1), str(err.value)


def test_how_far_back_a_partition_reaches_is_a_setting(tmp_path: Path) -> None:
    """LAG/LEAD's offset and a ROWS frame are bounded by `query.over.max.rows` (100,000):
    past it the query is refused at its place, naming the setting; raised, it runs."""
    lead = "SELECT k, LEAD(v, 150000) OVER (PARTITION BY g ORDER BY t) AS n FROM s;"
    frame = (
        "SELECT k, SUM(v) OVER (PARTITION BY g ORDER BY t ROWS BETWEEN 200000 PRECEDING "
        "AND CURRENT ROW) AS n FROM s;"
    )
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        for text, marker in ((lead, "150000)"), (frame, "SUM")):
            with pytest.raises(SqlError, match=r"\(query\.over\.max\.rows\)") as err:
                engine.execute(f"CREATE STREAM o AS {text}")
            where = f"CREATE STREAM o AS {text}".index(marker) + 1
            assert (err.value.line, err.value.column) == (1, where)
        engine.execute("SET 'query.over.max.rows' = '250000';")
        engine.execute(f"CREATE STREAM o1 AS {lead}")
        engine.execute(f"CREATE STREAM o2 AS {frame}")
        with pytest.raises(HispeedError, match=r"query\.over\.max\.rows must be a whole number"):
            engine.execute("CREATE STREAM o3 AS " + lead, properties={"query.over.max.rows": "x"})
