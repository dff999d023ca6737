"""Outer interval joins whose window lies after (or before) the row, not around it:
`a LEFT JOIN b ON a.k = b.k AND b.t BETWEEN a.t + 2 s AND a.t + 4 s`. An unmatched outer row is
sent NULL-padded once stream time passes its window's END (Flink's interval join; docs/sql.md
"When an outer stream-stream join sends a row NULL-padded"), and each side's rows are kept
until the last window that can reach them has closed, so a match that comes inside the window
joins. Checked against DuckDB's join of the same records: in time order, and with the side
whose window lies ahead delayed by up to the window's offset (out of order, never late), over
1 and 2 partitions, with a restart half way."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from tests.engine.test_joins import open_engine

DDL = (
    "CREATE STREAM a (k STRING KEY, x INT, t BIGINT) "
    "WITH (kafka_topic='a', value_format='JSON', partitions={p}, timestamp='t');"
    "CREATE STREAM b (k STRING KEY, y INT, t BIGINT) "
    "WITH (kafka_topic='b', value_format='JSON', partitions={p}, timestamp='t');"
)
AHEAD = "b.t BETWEEN a.t + INTERVAL '2' SECOND AND a.t + INTERVAL '4' SECOND"  # a's window
AHEAD_FLIPPED = "a.t BETWEEN b.t - INTERVAL '4' SECOND AND b.t - INTERVAL '2' SECOND"
BEHIND = "a.t BETWEEN b.t + INTERVAL '2' SECOND AND b.t + INTERVAL '4' SECOND"  # b's ahead
#: (kind, condition, DuckDB's condition, the side whose window lies ahead: it may come late)
CASES = {
    "left-ahead": ("LEFT", AHEAD, "b.t BETWEEN a.t + 2000 AND a.t + 4000", "a"),
    "left-ahead-flipped": ("LEFT", AHEAD_FLIPPED, "a.t BETWEEN b.t - 4000 AND b.t - 2000", "a"),
    "full-ahead": ("FULL", AHEAD, "b.t BETWEEN a.t + 2000 AND a.t + 4000", "a"),
    "right-behind": ("RIGHT", BEHIND, "a.t BETWEEN b.t + 2000 AND b.t + 4000", "b"),
    "full-behind": ("FULL", BEHIND, "a.t BETWEEN b.t + 2000 AND b.t + 4000", "b"),
    "inner-ahead": ("INNER", AHEAD, "b.t BETWEEN a.t + 2000 AND a.t + 4000", "a"),
}
END = 10_000_000  # a record of each side this late closes every window


def _records(seed: int, delayed: str, disorder: int) -> list[tuple[str, str, int, int]]:
    """(side, key, value, time) in arrival order: side `delayed`'s records come up to
    `disorder` ms after their time (so out of order), the other side's at their time."""
    rnd = random.Random(seed)
    recs = [(s, rnd.choice("pqr"), i, rnd.randrange(0, 40_000)) for s in "ab" for i in range(90)]
    arrival = [t + (rnd.randrange(disorder + 1) if s == delayed else 0) for s, _, _, t in recs]
    # ties: the delayed side first, as if it came a moment earlier
    order = sorted(range(len(recs)), key=lambda i: (arrival[i], recs[i][0] != delayed))
    return [recs[i] for i in order]


def _send(e: Engine, side: str, key: str, value: int, t: int) -> None:
    row = {"X": value, "T": t} if side == "a" else {"Y": value, "T": t}
    e.insert(side, {"K": key, **row})
    e.drain()


def read_values(e: Engine, topic: str) -> list[dict[str, Any]]:
    """The values of every partition of `topic`, decoded."""
    rows = []
    for p in range(len(e.log.describe_topic(topic).partitions)):
        rows += [json.loads(r["value"]) for r in e.log.read_table(topic, p).to_pylist()]
    return rows


def joined_pairs(
    e: Engine, path: Path, recs: list[Any], send: Callable[..., None]
) -> list[tuple[int | None, int | None]]:
    """Send `recs` (a restart half way: the join's state comes back from its changelog),
    then a record of each side far later, which closes every window; the (X, Y) of J's rows
    but the last two records'. Closes the engine."""
    try:
        for i, rec in enumerate(recs):
            if i == len(recs) // 2:
                e.close()
                e = open_engine(path)
            send(e, *rec)
        send(e, "a", "end", -1, END)
        send(e, "b", "end", -1, END)
        pairs = [(v["X"], v["Y"]) for v in read_values(e, "J")]
        return [p for p in pairs if -1 not in p]
    finally:
        e.close()


@pytest.mark.parametrize("partitions", [1, 2])
@pytest.mark.parametrize("disorder", [0, 2000])
@pytest.mark.parametrize("case", sorted(CASES))
def test_outer_interval_join_with_a_window_off_the_row_matches_duckdb(
    tmp_path: Path, case: str, disorder: int, partitions: int
) -> None:
    kind, cond, sql_cond, delayed = CASES[case]
    recs = _records(len(case) * 31 + disorder + partitions, delayed, disorder)
    e = open_engine(tmp_path / "data")
    e.execute(DDL.format(p=partitions))
    join = "JOIN" if kind == "INNER" else f"{kind} JOIN"
    key = {"FULL": "ROWKEY", "RIGHT": "b.k"}.get(kind, "a.k")
    select = f"SELECT {key} AS jk, x, y FROM a {join} b ON a.k = b.k AND {cond}"
    e.execute(f"CREATE STREAM j AS {select};")
    got = joined_pairs(e, tmp_path / "data", recs, _send)
    con = duckdb.connect()
    for side, col in (("a", "x"), ("b", "y")):
        con.execute(f"CREATE TABLE {side} (k VARCHAR, {col} INT, t BIGINT)")
        rows = [(k, v, t) for s, k, v, t in recs if s == side]
        con.executemany(f"INSERT INTO {side} VALUES (?, ?, ?)", rows)
    duck = "FULL OUTER" if kind == "FULL" else kind
    want = con.execute(f"SELECT x, y FROM a {duck} JOIN b ON a.k = b.k AND {sql_cond}").fetchall()
    want = sorted(want, key=repr)
    got = sorted(got, key=repr)
    assert sum(1 for x, y in want if x is not None and y is not None) > 20  # tests something
    assert got == want
