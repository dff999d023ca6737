"""Window deduplication and window Top-N straight over a window table function's rows, as
Flink's: `ROW_NUMBER() OVER (PARTITION BY window_start, window_end, ... ORDER BY ...)` over
`TUMBLE(TABLE s, ...)`, each window's ranks output once when stream time reaches its end, a
row whose window has closed dropped as late. The output is checked against DuckDB's
computation of those rules over the same rows (out of order and late ones among them),
decoded with `json`, across batches and a restart."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.testing.windows import TVF_CALLS, kept_windows_sql

STREAM = (
    "CREATE STREAM s (id STRING KEY, g STRING, v BIGINT, t BIGINT) WITH "
    "(kafka_topic='s', partitions=1, value_format='JSON', timestamp='t');"
)
SIZE = 100


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows mostly in time order, some up to 150 ms early: out of order within a window, and
    some after their window has closed (late)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        back = rng.randrange(150) if rng.random() < 0.2 else 0
        rows.append(
            {
                "ID": f"i{i}",
                "G": f"g{rng.randrange(3)}",
                "V": rng.randrange(20),
                "T": 1000 + 7 * i - back,
            }
        )
    return rows


def _append(engine: Engine, rows: list[dict[str, Any]]) -> None:
    engine.log.append("s", [(r["ID"].encode(), json.dumps(r).encode()) for r in rows])
    engine.drain()


def _expected(
    rows: list[dict[str, Any]], kind: str, direction: str, n: int
) -> list[tuple[Any, ...]]:
    """DuckDB's rows under Flink's window rules: a row counts in a window unless stream time
    (the newest time before it, in arrival order) had reached the window's end; a window is
    output once stream time reaches its end; ties in the order go to the row that came
    first."""
    con = duckdb.connect()
    con.execute("create table s (pos int, g varchar, v bigint, t bigint)")
    con.executemany(
        "insert into s values (?, ?, ?, ?)",
        [(i, r["G"], r["V"], r["T"]) for i, r in enumerate(rows)],
    )
    return con.execute(
        f"""
        with {kept_windows_sql(kind, "s")},
        ranked as (
          select ws, we, g, v, t,
                 row_number() over (partition by ws, we, g order by v {direction}, pos) as rn
          from kept)
        select ws, we, g, v, t, rn from ranked
        where rn <= {n} and we <= (select max(t) from s)
        """
    ).fetchall()


def _written(engine: Engine, topic: str) -> list[dict[str, Any]]:
    """Each output record's key and value columns (a JSON key)."""
    out = []
    for r in engine.log.read_table(topic, 0).to_pylist():
        assert r["value"] is not None  # final results: never a tombstone
        out.append({**json.loads(r["key"]), **json.loads(r["value"])})
    return out


@pytest.mark.parametrize(
    ("kind", "direction", "n"),
    [
        ("TUMBLE", "ASC", 1),
        ("TUMBLE", "DESC", 1),
        ("TUMBLE", "DESC", 3),
        ("HOP", "ASC", 1),
        ("HOP", "DESC", 3),
        ("CUMULATE", "DESC", 1),
        ("CUMULATE", "ASC", 3),
    ],
)
def test_window_ranks_of_tvf_rows_match_duckdb_across_a_restart(
    tmp_path: Path, kind: str, direction: str, n: int
) -> None:
    rows = _rows(400, 7)
    bound = "rn = 1" if n == 1 else f"rn <= {n}"
    query = (
        "CREATE TABLE w WITH (key_format='JSON') AS SELECT * FROM ("
        "SELECT window_start, window_end, g, v, t, ROW_NUMBER() OVER (PARTITION BY "
        f"window_start, window_end, g ORDER BY v {direction}) AS rn "
        f"FROM TABLE({TVF_CALLS[kind].format(s='s')})) WHERE {bound};"
    )
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(query)
        for start in range(0, 200, 13):
            _append(engine, rows[start : min(start + 13, 200)])
        first = _written(engine, "W")
    with Engine(tmp_path / "data") as engine:  # the open windows come back from the changelog
        for start in range(200, 400, 17):
            _append(engine, rows[start : start + 17])
        out = _written(engine, "W")
    got = [(r["WINDOW_START"], r["WINDOW_END"], r["G"], r["V"], r["T"], r["RN"]) for r in out]
    expected = _expected(rows, kind, direction, n)
    assert len(expected) > 30
    # each window's ranks written once, when it closed: no row twice, none taken back
    assert len(got) == len(set(got))
    assert set(got) == set(expected)
    # what was written before the restart was of closed windows only, and stays
    assert 0 < len(first) < len(out)
    assert out[: len(first)] == first


def test_nothing_is_written_before_the_window_closes(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(
            "CREATE TABLE d WITH (key_format='JSON') AS SELECT * FROM (SELECT window_start, "
            "window_end, g, v, t, "
            "ROW_NUMBER() OVER (PARTITION BY window_start, window_end, g ORDER BY t DESC) "
            "AS rn FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(t), INTERVAL '100' MILLISECONDS))) "
            "WHERE rn = 1;"
        )
        _append(engine, [{"ID": "a", "G": "x", "V": 1, "T": 10}])
        _append(engine, [{"ID": "b", "G": "x", "V": 2, "T": 99}])
        assert engine.log.read_table("D", 0).num_rows == 0
        # stream time reaches 100: [0, 100) closes with its last row; the late one is dropped
        _append(engine, [{"ID": "c", "G": "x", "V": 3, "T": 100}])
        _append(engine, [{"ID": "d", "G": "x", "V": 4, "T": 50}])
        _append(engine, [{"ID": "e", "G": "x", "V": 5, "T": 250}])
        table = engine.log.read_table("D", 0).to_pylist()
    # keyed by the PARTITION BY columns (three: the JSON key format holds them)
    got = [(json.loads(r["key"]), json.loads(r["value"])) for r in table]
    assert got == [
        ({"WINDOW_START": 0, "WINDOW_END": 100, "G": "x"}, {"V": 2, "T": 99, "RN": 1}),
        ({"WINDOW_START": 100, "WINDOW_END": 200, "G": "x"}, {"V": 3, "T": 100, "RN": 1}),
    ]


@pytest.mark.parametrize(
    ("query", "at", "says"),
    [
        (
            "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY t) AS rn "
            "FROM TUMBLE(TABLE s, DESCRIPTOR(t), INTERVAL '1' SECOND)) WHERE rn = 1",
            "ROW_NUMBER",
            "PARTITION BY window_start, window_end",
        ),
        (
            # each row would be copied into 100,000 windows: refused when planned
            "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY window_start, "
            "window_end, g ORDER BY t) AS rn FROM HOP(TABLE s, DESCRIPTOR(t), "
            "INTERVAL '1' MILLISECOND, INTERVAL '100' SECONDS)) WHERE rn = 1",
            "HOP",
            "puts each row in 100,000 windows",
        ),
    ],
)
def test_what_is_not_run_is_refused_at_its_place(
    tmp_path: Path, query: str, at: str, says: str
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        with pytest.raises(SqlError) as caught:
            engine.execute(f"CREATE TABLE x WITH (key_format='JSON') AS {query};")
    assert says in str(caught.value)
    prefix = "CREATE TABLE x WITH (key_format='JSON') AS "
    assert (caught.value.line, caught.value.column) == (1, len(prefix) + query.index(at) + 1)
