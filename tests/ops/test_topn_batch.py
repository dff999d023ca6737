"""A stream's Top-N a batch at a time (ops/topn_batch.py) against the row path it replaces
(ops/topn.py, kept as the reference): the same records in the same order (keys, values,
times), ties, NULL order values and a NULL partition included, in small and large batches;
a restart that hands the state written by one path to the other; and the table both leave
compared with DuckDB's ROW_NUMBER over the same rows."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

import hispeed.ops.topn as topn
from hispeed.engine import Engine

STREAM = (
    "CREATE STREAM s (k STRING KEY, g STRING, h BIGINT, v BIGINT, w INTEGER, t BIGINT) WITH "
    "(kafka_topic='s', partitions=1, value_format='JSON', timestamp='t');"
)

#: (rank bound, ORDER BY, PARTITION BY, the rank selected)
SHAPES = {
    "dedup last": (1, "t DESC", "g, h", False),
    "dedup first": (1, "t ASC", "g", False),
    "top 3 by two columns": (3, "v DESC, w ASC", "g", True),
    "top 2 no partition": (2, "w DESC", "", True),
}


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows with many ties (few distinct values), some NULL order values and partitions."""
    rng = random.Random(seed)
    return [
        {
            "K": f"k{i}",
            "G": None if rng.random() < 0.1 else f"g{rng.randrange(6)}",
            "H": rng.randrange(3),
            "V": None if rng.random() < 0.1 else rng.randrange(20),
            "W": rng.randrange(5),
            "T": 1000 + rng.randrange(n // 2),
        }
        for i in range(n)
    ]


def _query(shape: str) -> str:
    bound, order, partition, ranked = SHAPES[shape]
    over = f"PARTITION BY {partition} ORDER BY {order}" if partition else f"ORDER BY {order}"
    outer = "*" if ranked else "g, h, k, v, w, t"
    return (
        f"CREATE TABLE top WITH (key_format='JSON') AS SELECT {outer} FROM (SELECT g, h, k, v, "
        f"w, t, ROW_NUMBER() OVER ({over}) AS rn FROM s) WHERE rn <= {bound} EMIT CHANGES;"
    )


def _feed(engine: Engine, rows: list[dict[str, Any]], chunk: int) -> None:
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        engine.log.append("s", [(r["K"].encode(), json.dumps(r).encode()) for r in part])
        engine.drain()


def _records(engine: Engine) -> list[tuple[Any, ...]]:
    table = engine.log.read_table("TOP", 0)
    return list(
        zip(
            table.column("key").to_pylist(),
            table.column("value").to_pylist(),
            table.column("timestamp").to_pylist(),
            strict=True,
        )
    )


def _run(
    tmp: Path,
    shape: str,
    rows: list[dict[str, Any]],
    chunk: int,
    batched: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> list[tuple[Any, ...]]:
    """The query's records over `rows`, in as many engine runs as `batched` has (each with
    its path; the query and its state carried from one run to the next)."""
    size = -(-len(rows) // len(batched))
    for run, on in enumerate(batched):
        monkeypatch.setattr(topn, "batch_eligible", (lambda plan: False) if not on else _eligible)
        with Engine(tmp) as engine:
            if run == 0:
                engine.execute(STREAM)
                engine.execute(_query(shape))
            _feed(engine, rows[run * size : (run + 1) * size], chunk)
            if run == len(batched) - 1:
                return _records(engine)
    raise AssertionError("no run")


_eligible = topn.batch_eligible


def _duckdb(shape: str, rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    bound, order, partition, _ = SHAPES[shape]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE s (k VARCHAR, g VARCHAR, h BIGINT, v BIGINT, w INTEGER, t BIGINT, "
        "pos INTEGER)"
    )
    con.executemany(
        "INSERT INTO s VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(r["K"], r["G"], r["H"], r["V"], r["W"], r["T"], i) for i, r in enumerate(rows)],
    )
    # NULLS LAST either way, as hispeed sorts them; equal values go to the first row, but
    # in keep-last deduplication (by the stream's time, DESC) to the last, as Flink's
    order = ", ".join(f"{o} NULLS LAST" for o in order.split(", "))
    over = f"PARTITION BY {partition} " if partition else ""
    over += f"ORDER BY {order}, pos" + (" DESC" if shape == "dedup last" else "")
    got = con.execute(
        f"SELECT g, h, k, v, w, t, rn FROM (SELECT *, ROW_NUMBER() OVER ({over}) AS rn FROM s) "
        f"WHERE rn <= {bound}"
    ).fetchall()
    con.close()
    return set(got)


def _table(records: list[tuple[Any, ...]], shape: str) -> set[tuple[Any, ...]]:
    """The rows the records leave, each key's last value (as DuckDB's columns, with rn)."""
    partition = SHAPES[shape][2]
    # one key column is written as its value alone (the partition's or the rank's)
    single = "RN" if not partition else partition.upper()
    latest: dict[bytes, Any] = {}
    for key, value, _ in records:
        latest[key] = None if value is None else (json.loads(key), json.loads(value))
    out = set()
    for entry in latest.values():
        if entry is None:
            continue
        key, value = entry
        row = {**(key if isinstance(key, dict) else {single: key}), **value}
        rn = row.get("RN", 1)
        out.add((row.get("G"), row["H"], row["K"], row["V"], row["W"], row["T"], rn))
    return out


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_batch_path_writes_what_the_row_path_writes(
    tmp_path: Path, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(600, 3)
    expected = _duckdb(shape, rows)
    written = {}
    # batches of 7 rows (ranks change across many) and of 200 (many rows of a partition
    # ranked within one batch)
    for chunk in (7, 200):
        by_row = _run(tmp_path / f"row{chunk}", shape, rows, chunk, [False], monkeypatch)
        batched = _run(tmp_path / f"batch{chunk}", shape, rows, chunk, [True], monkeypatch)
        assert batched == by_row
        assert _table(batched, shape) == expected
        written[chunk] = len(batched)
    assert written[7] > len(expected)  # rows were replaced on the way: a changelog


@pytest.mark.parametrize("shape", ["dedup last", "top 3 by two columns"])
def test_a_restart_hands_the_state_between_the_paths(
    tmp_path: Path, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State the row path committed (as every earlier version wrote it) is continued by the
    batch path after a restart, and the other way round, writing what one path writes."""
    rows = _rows(400, 8)
    reference = _run(tmp_path / "row", shape, rows, 25, [False], monkeypatch)
    # runs of 200 or 100 rows: the batches (of 25) are those of the one run
    for i, runs in enumerate(([False, True], [True, False], [True, False, True, True])):
        got = _run(tmp_path / f"mixed{i}", shape, rows, 25, list(runs), monkeypatch)
        assert got == reference
    assert _table(reference, shape) == _duckdb(shape, rows)
