"""Stream-table joins a run of slices at a time (ops/join_lookup.py) against DuckDB.

The task hands a join's two inputs out in timestamp order (runtime/ordering.py): by each
partition's running maximum time, a table first on equal times, then by offset. A stream
record joins the table as the changes processed before it left it. DuckDB computes that here
from the records alone: the processing order by window functions, each stream record's table
row by an ASOF join; the engine's outputs must be the same rows in the same order.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.log.base import Record
from hispeed.runtime.task import PROCESSING_LOG

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

CLICKS = (
    "CREATE STREAM clicks (user_id STRING KEY, page STRING) "
    "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
)
USERS = (
    "CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, n BIGINT) "
    "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
)

REFERENCE = """
WITH ordered AS (
  SELECT side, off, phase,
    max(ts) OVER (PARTITION BY side, phase ORDER BY off ROWS UNBOUNDED PRECEDING) AS m
  FROM (SELECT 0 AS side, off, phase, ts FROM tab UNION ALL
        SELECT 1 AS side, off, phase, ts FROM str WHERE ok)
), places AS (
  SELECT side, off, row_number() OVER (ORDER BY phase, m, side, off) AS place FROM ordered
), t AS (
  SELECT tab.*, place FROM tab JOIN places p ON p.side = 0 AND p.off = tab.off
), s AS (
  SELECT str.*, place FROM str JOIN places p ON p.side = 1 AND p.off = str.off
)
SELECT s.k, s.page, CASE WHEN t.deleted THEN NULL ELSE t.name END AS name,
  CASE WHEN t.deleted THEN NULL ELSE t.n END AS n, s.ts, t.k IS NOT NULL AND NOT t.deleted
FROM s ASOF LEFT JOIN t ON s.k = t.k AND s.place > t.place
WHERE s.k IS NOT NULL
ORDER BY s.place
"""


def _records(seed: int, n: int, start: int, phase: int) -> tuple[list[Any], list[Any]]:
    """Interleaved table changes (updates, deletions) and clicks (some late, some with no key,
    one unreadable), timestamps often equal."""
    rng = random.Random(seed)
    table: list[Any] = []
    stream: list[Any] = []
    t = start
    for _ in range(n):
        t += rng.choice((0, 0, 1, 3))
        key = f"u{rng.randrange(8)}"
        if rng.random() < 0.3:
            value = None if rng.random() < 0.2 else {"NAME": f"n{rng.randrange(99)}", "N": t}
            table.append((key, value, t, phase))
        else:
            ts = t - rng.randrange(1, 40) if rng.random() < 0.1 else t  # late
            stream.append((None if rng.random() < 0.03 else key, f"/{t}", max(ts, start), phase))
    stream.append(("u1", None, t, phase))  # unreadable: goes to the processing log
    return table, stream


def _append(engine: Engine, table: list[Any], stream: list[Any]) -> None:
    engine.log.append(
        "users",
        [Record(None if v is None else json.dumps(v), k, ts) for k, v, ts, _ in table],
        partition=0,
    )
    engine.log.append(
        "clicks",
        [
            Record(b"{not json" if p is None else json.dumps({"PAGE": p}), k, ts)
            for k, p, ts, _ in stream
        ],
        partition=0,
    )


def _expected(table: list[Any], stream: list[Any], kind: str) -> list[Any]:
    tab = pa.table(  # noqa: F841 (read by duckdb)
        {
            "off": list(range(len(table))),
            "k": [k for k, *_ in table],
            "name": [v and v["NAME"] for _, v, *_ in table],
            "n": [v and v["N"] for _, v, *_ in table],
            "deleted": [v is None for _, v, *_ in table],
            "ts": [ts for *_, ts, _ in table],
            "phase": [p for *_, p in table],
        }
    )
    str = pa.table(  # noqa: F841 (read by duckdb)
        {
            "off": list(range(len(stream))),
            "k": [k for k, *_ in stream],
            "page": [p for _, p, *_ in stream],
            "ok": [p is not None for _, p, *_ in stream],
            "ts": [ts for *_, ts, _ in stream],
            "phase": [p for *_, p in stream],
        }
    )
    rows = DUCK.sql(REFERENCE).fetchall()
    return [
        (k, {"PAGE": page, "NAME": name, "N": n}, ts)
        for k, page, name, n, ts, found in rows
        if found or kind == "LEFT"
    ]


def _outputs(engine: Engine, topic: str) -> list[Any]:
    return [
        (r["key"].decode(), json.loads(r["value"]), r["timestamp"])
        for r in engine.log.read_table(topic, 0).to_pylist()
    ]


def _open(path: Path) -> Engine:
    return Engine(path, fsync="never", properties={"ksql.streams.cache.max.bytes.buffering": "0"})


@pytest.mark.parametrize(
    ("kind", "record_path_first"), [("INNER", False), ("LEFT", False), ("LEFT", True)]
)
def test_stream_table_runs_match_duckdb_across_a_restart(
    tmp_path: Path, kind: str, record_path_first: bool
) -> None:
    """Both inputs in the log before the query reads them (so slices come in long runs), a
    restart from the committed state between two halves, then the rest. With
    `record_path_first` the first half runs on the record-at-a-time step
    (ops/join_stream_table.py), whose committed state the run path must take over."""
    path = tmp_path / "data"
    first = _records(1, 800, 1_000, 0)
    second = _records(2, 800, 1_000_000, 1)
    with _open(path) as e:
        e.execute(CLICKS)
        e.execute(USERS)
        _append(e, *first)
        (res,) = e.execute(
            f"CREATE STREAM j AS SELECT c.user_id, page, name, n FROM clicks c {kind} JOIN "
            "users u ON c.user_id = u.user_id;"
        )
        join = e.tasks[str(res.query_id)].join
        assert join is not None
        assert join.runs is not None  # the path under test
        if record_path_first:
            join.runs = None
            join.stores = list(join.steps)
        e.drain()
    with _open(path) as e:
        _append(e, *second)
        e.drain()
        got = _outputs(e, "J")
        errors = e.log.read_table(PROCESSING_LOG, 0).num_rows
    table, stream = first[0] + second[0], first[1] + second[1]
    assert got == _expected(table, stream, kind)
    assert errors == 2  # each unreadable click reported once


# -- stream-stream joins a run at a time (ops/join_columnar.py) ---------------------------------

LEFT_STREAM = (
    "CREATE STREAM l (k STRING KEY, v INT) "
    "WITH (kafka_topic='l', value_format='JSON', partitions=1);"
)
RIGHT_STREAM = (
    "CREATE STREAM r (k STRING KEY, w INT) "
    "WITH (kafka_topic='r', value_format='JSON', partitions=1);"
)

#: the pairs a stream-stream join sends, by the record-at-a-time semantics: the later record
#: of a pair (in processing order) joins the earlier if their times are within the window as
#: seen from the later one, and the earlier is still kept (its time above the newest time of
#: its side so far less the window and grace); an unmatched record of an outer side is sent
#: at once (no GRACE PERIOD), joined to nulls
STREAM_REFERENCE = """
WITH u AS (
  SELECT 0 AS side, off, k, ts, phase, x FROM lt UNION ALL
  SELECT 1 AS side, off, k, ts, phase, x FROM rt
), o AS (
  SELECT *, max(ts) OVER (PARTITION BY side, phase ORDER BY off ROWS UNBOUNDED PRECEDING) AS m
  FROM u
), p AS (
  SELECT *, row_number() OVER (ORDER BY phase, m, side, off) AS place FROM o WHERE k IS NOT NULL
), newest AS (
  SELECT a.side, a.place, coalesce(max(b.ts), 0) AS n FROM p a
  LEFT JOIN p b ON b.side <> a.side AND b.place < a.place GROUP BY a.side, a.place
), pairs AS (
  SELECT a.place, a.side, a.k, a.x AS ax, b.x AS bx, greatest(a.ts, b.ts) AS ts, b.ts AS bts,
    b.place AS bplace
  FROM p a JOIN newest n ON n.side = a.side AND n.place = a.place
  JOIN p b ON b.k = a.k AND b.side <> a.side AND b.place < a.place
  WHERE b.ts >= greatest(0, a.ts - CASE WHEN a.side = 0 THEN $before ELSE $after END)
    AND b.ts <= a.ts + CASE WHEN a.side = 0 THEN $after ELSE $before END
    AND b.ts > n.n - $retention
)
SELECT place, side, k, ax, bx, ts, bts, bplace FROM pairs
UNION ALL
SELECT place, side, k, x, NULL, ts, -1, -1 FROM p
WHERE side IN $outer AND place NOT IN (SELECT place FROM pairs)
ORDER BY place, bts, bplace
"""


def _stream_records(seed: int, n: int, start: int) -> tuple[list[Any], list[Any]]:
    """Records of both sides, times often equal, some late by up to 9 s, a few without key."""
    rng = random.Random(seed)
    sides: tuple[list[Any], list[Any]] = ([], [])
    t = start
    for i in range(n):
        t += rng.choice((0, 100, 300, 700))
        ts = t - rng.randrange(1, 9000) if rng.random() < 0.1 else t
        key = None if rng.random() < 0.03 else f"k{rng.randrange(6)}"
        sides[rng.randrange(2)].append((key, i, max(ts, start)))
    return sides


@pytest.mark.parametrize(
    ("kind", "grace", "record_path_first"),
    [
        ("INNER", 1000, False),
        ("INNER", 1000, True),
        ("INNER", None, False),
        ("LEFT", None, False),
        ("RIGHT", None, False),
        ("FULL OUTER", None, False),
    ],
)
def test_stream_stream_runs_match_duckdb_across_a_restart(
    tmp_path: Path, kind: str, grace: int | None, record_path_first: bool
) -> None:
    """Both sides in the log before the query reads them (long runs of slices), late records,
    a restart between two halves (with `record_path_first` the first half on the
    record-at-a-time step, ops/join_stream_stream.py, whose state the run path takes over)."""
    path = tmp_path / "data"
    before, after = 2000, 3000
    first = _stream_records(3, 500, 10_000)
    # the second half goes on where the first ended: its records join records kept before
    halves = [first, _stream_records(4, 500, max(ts for s in first for *_, ts in s))]
    grace_sql = f" GRACE PERIOD {grace} MILLISECONDS" if grace is not None else ""
    key = "ROWKEY" if kind == "FULL OUTER" else ("r.k" if kind == "RIGHT" else "l.k")

    def append(e: Engine, half: tuple[list[Any], list[Any]]) -> None:
        for topic, name, records in (("l", "V", half[0]), ("r", "W", half[1])):
            rows = [Record(json.dumps({name: x}), k, ts) for k, x, ts in records]
            e.log.append(topic, rows, partition=0)

    with _open(path) as e:
        e.execute(LEFT_STREAM)
        e.execute(RIGHT_STREAM)
        append(e, halves[0])
        (res,) = e.execute(
            f"CREATE STREAM j AS SELECT {key} AS k, v, w FROM l {kind} JOIN r "
            f"WITHIN ({before} MILLISECONDS, {after} MILLISECONDS){grace_sql} ON l.k = r.k;"
        )
        join = e.tasks[str(res.query_id)].join
        assert join is not None
        assert join.columnar is not None  # the path under test
        if record_path_first:
            join.columnar = join.runs = None
            join.stores = list(join.steps)
        e.drain()
    with _open(path) as e:
        append(e, halves[1])
        e.drain()
        got = _outputs(e, "J")

    def table(side: int) -> pa.Table:
        rows = [(k, x, ts, phase) for phase, h in enumerate(halves) for k, x, ts in h[side]]
        return pa.table(
            {
                "off": list(range(len(rows))),
                "k": [r[0] for r in rows],
                "x": [r[1] for r in rows],
                "ts": [r[2] for r in rows],
                "phase": [r[3] for r in rows],
            }
        )

    lt, rt = table(0), table(1)  # noqa: F841 (read by duckdb)
    outer = {"INNER": "(-1)", "LEFT": "(0)", "RIGHT": "(1)", "FULL OUTER": "(0, 1)"}[kind]
    retention = before + after + (grace if grace is not None else 24 * 3600 * 1000)
    sql = (
        STREAM_REFERENCE.replace("$before", str(before))
        .replace("$after", str(after))
        .replace("$retention", str(retention))
        .replace("$outer", outer)
    )
    expected = []
    for _place, side, k, ax, bx, ts, _bts, _bplace in DUCK.sql(sql).fetchall():
        v, w = (ax, bx) if side == 0 else (bx, ax)
        expected.append((k, {"V": v, "W": w}, ts))
    assert got == expected
