"""GROUP BY over a table a batch at a time (ops/aggregate_table.py) against the record-by-record
path it replaces (`Aggregator._table_update`, kept as the reference): the same records in the
same order (keys, values, times) with rows that move between groups, are deleted (tombstones),
leave the WHERE or get a NULL group, DOUBLE sums included; a restart that hands the state
written by one path to the other; and the table both leave compared with DuckDB over the
source table's last rows."""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.ops import aggregate_table

SOURCE = (
    "CREATE TABLE src (id BIGINT PRIMARY KEY, g STRING, v BIGINT, d DOUBLE, t BIGINT) WITH "
    "(kafka_topic='src', partitions=1, key_format='KAFKA', value_format='JSON', timestamp='t');"
)
QUERY = (
    "CREATE TABLE agg AS SELECT g, COUNT(*) AS n, SUM(v) AS s, AVG(v) AS av, SUM(d) AS sd, "
    "AVG(d) AS ad, COUNT(d) AS nd FROM src WHERE v <> 3 GROUP BY g EMIT CHANGES;"
)


def _records(n: int, seed: int) -> list[tuple[int, dict[str, Any] | None]]:
    """Updates of 40 ids: mostly new values (often another group), some deletions, NULL
    groups, NULL doubles, values WHERE drops; times mostly rising, some earlier."""
    rng = random.Random(seed)
    out: list[tuple[int, dict[str, Any] | None]] = []
    for i in range(n):
        key = rng.randrange(40)
        if rng.random() < 0.12:
            out.append((key, None))
            continue
        out.append(
            (
                key,
                {
                    "G": None if rng.random() < 0.08 else f"g{rng.randrange(5)}",
                    "V": rng.randrange(-5, 10),
                    "D": None if rng.random() < 0.1 else rng.randrange(-50, 50) / 10,
                    "T": 1000 + i - (rng.randrange(30) if rng.random() < 0.2 else 0),
                },
            )
        )
    return out


def _time(key: int, value: dict[str, Any] | None) -> int:
    """A record's time: its `t`, or for a tombstone one fixed by its key."""
    return 1000 + 7 * key if value is None else int(value["T"])


def _feed(engine: Engine, records: list[tuple[int, dict[str, Any] | None]], chunk: int) -> None:
    for start in range(0, len(records), chunk):
        part = records[start : start + chunk]
        batch = {
            "key": pa.array([struct.pack(">q", k) for k, _ in part], pa.binary()),
            "value": pa.array(
                [None if v is None else json.dumps(v).encode() for _, v in part], pa.binary()
            ),
            # a tombstone's time is its record's (it has no `t`)
            "timestamp": pa.array([_time(k, v) for k, v in part], pa.int64()),
        }
        engine.log.append("src", pa.record_batch(batch), partition=0)
        engine.drain()


def _written(engine: Engine) -> list[tuple[Any, ...]]:
    """The query's records as (key, value, time)."""
    columns = engine.log.read_table("AGG", 0).select(["key", "value", "timestamp"])
    return list(zip(*columns.to_pydict().values(), strict=True))


def _run(
    tmp: Path,
    records: list[tuple[int, dict[str, Any] | None]],
    chunk: int,
    batched: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> list[tuple[Any, ...]]:
    """The query's records over `records`, in as many engine runs as `batched` has (each
    with its path; the query and its state carried from one run to the next)."""
    size = -(-len(records) // len(batched))
    for run, on in enumerate(batched):
        monkeypatch.setattr(aggregate_table, "eligible", _eligible if on else lambda plan: False)
        with Engine(tmp) as engine:
            if run == 0:
                engine.execute(SOURCE)
                engine.execute(QUERY)
            aggregators = [t.aggregator for t in engine.tasks.values() if t.aggregator]
            assert [a.table_batches for a in aggregators] == [on]
            _feed(engine, records[run * size : (run + 1) * size], chunk)
            if run == len(batched) - 1:
                return _written(engine)
    raise AssertionError("no run")


_eligible = aggregate_table.eligible


def _duckdb(records: list[tuple[int, dict[str, Any] | None]]) -> dict[str, tuple[Any, ...]]:
    """Each group's (n, s, av, sd, ad, nd) over the source table's last rows."""
    last: dict[int, dict[str, Any] | None] = {}
    for key, value in records:
        last[key] = value
    con = duckdb.connect()
    con.execute("CREATE TABLE src (id BIGINT, g VARCHAR, v BIGINT, d DOUBLE)")
    con.executemany(
        "INSERT INTO src VALUES (?, ?, ?, ?)",
        [(k, v["G"], v["V"], v["D"]) for k, v in last.items() if v is not None],
    )
    rows = con.execute(
        "SELECT g, COUNT(*), SUM(v), AVG(v), COALESCE(SUM(d), 0), COALESCE(AVG(d), 0), "
        "COUNT(d) FROM src WHERE v <> 3 AND g IS NOT NULL GROUP BY g"
    ).fetchall()
    con.close()
    return {r[0]: tuple(r[1:]) for r in rows}


def _table(written: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """The groups the records leave (each key's last value), those with rows in them."""
    latest: dict[bytes, Any] = {}
    for key, value, _ in written:
        latest[key] = None if value is None else json.loads(value)
    return {
        key.decode(): (v["N"], v["S"], v["AV"], v["SD"], v["AD"], v["ND"])
        for key, v in latest.items()
        if v is not None and v["N"] > 0
    }


def _close(a: dict[str, tuple[Any, ...]], b: dict[str, tuple[Any, ...]]) -> bool:
    """The same groups and counts, the sums and averages equal up to the rounding of DOUBLE
    sums in another order."""
    if a.keys() != b.keys():
        return False
    pairs = [xy for g in a for xy in zip(a[g], b[g], strict=True)]
    return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) for x, y in pairs)


@pytest.mark.parametrize("chunk", [3, 9, 250])
def test_the_batch_path_writes_what_the_row_path_writes(
    tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _records(400, 5)
    by_row = _run(tmp_path / "row", records, chunk, [False], monkeypatch)
    batched = _run(tmp_path / "batch", records, chunk, [True], monkeypatch)
    assert batched == by_row
    assert _close(_table(batched), _duckdb(records))
    groups = {key for key, _, _ in batched}
    assert len(batched) > len(groups)  # groups changed again and again: a changelog


def test_a_restart_hands_the_state_between_the_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State the row path committed (as every earlier version wrote it) is continued by the
    batch path after a restart, and the other way round, writing what one path writes."""
    records = _records(600, 11)
    reference = _run(tmp_path / "row", records, 20, [False], monkeypatch)
    # runs of 300 or 200 records: the batches (of 20) are those of the one run
    for i, runs in enumerate(([False, True], [True, False], [True, False, True])):
        got = _run(tmp_path / f"mixed{i}", records, 20, list(runs), monkeypatch)
        assert got == reference
    assert _close(_table(reference), _duckdb(records))
