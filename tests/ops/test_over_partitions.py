"""LAG, LEAD and aggregates over ROWS and RANGE frames over a stream of several partitions,
PARTITION BY a value column (each group's rows spread over the input partitions), compared
with DuckDB's window functions over the same rows (decoded with `json`, not hispeed): rows are
taken in event-time order across the partitions once the watermark (the least of the
partitions' newest times) reaches them, whatever the batches, one partition ahead of the
others, or a restart while rows wait; a row older than its group's last is dropped and
logged."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.ops.watermark import IDLE_TIMEOUT_PROPERTY

OVER = (
    "LAG(v) OVER (PARTITION BY g ORDER BY ROWTIME) AS prev, "
    "LEAD(v) OVER (PARTITION BY g ORDER BY ROWTIME) AS next, "
    "SUM(v) OVER (PARTITION BY g ORDER BY ROWTIME ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) "
    "AS s3, COUNT(*) OVER (PARTITION BY g ORDER BY ROWTIME "
    "RANGE BETWEEN INTERVAL '5' SECOND PRECEDING AND CURRENT ROW) AS c5"
)
EXPECTED = (
    "select t, g, v, lag(v) over w, lead(v) over w, "
    "sum(v) over (w rows between 2 preceding and current row), "
    "count(*) over (w range between 5000 preceding and current row) "
    "from s window w as (partition by g order by t)"
)


def _start(engine: Engine, partitions: int) -> None:
    engine.execute(
        "CREATE STREAM s (k STRING KEY, g STRING, v INT, t BIGINT) WITH (kafka_topic='s', "
        f"value_format='JSON', partitions={partitions}, timestamp='t');"
        f"CREATE STREAM o AS SELECT k, g, v, t, {OVER} FROM s EMIT CHANGES;"
    )


def _append(engine: Engine, partition: int, rows: list[dict[str, Any]]) -> None:
    records = [(r["K"].encode(), json.dumps(r).encode()) for r in rows]
    engine.log.append("s", records, partition=partition)


def _rows(n: int, partitions: int, seed: int) -> list[tuple[int, dict[str, Any]]]:
    """`n` rows one second apart in time order, each in a random partition."""
    rng = random.Random(seed)
    return [
        (
            rng.randrange(partitions),
            {"K": f"k{i}", "G": rng.choice("ab"), "V": rng.randrange(100), "T": 1000 * (i + 1)},
        )
        for i in range(n)
    ]


def _closing(partitions: int, t: int) -> list[tuple[int, dict[str, Any]]]:
    """A row of group z at `t` in each partition: the watermark reaches `t`."""
    return [(p, {"K": f"z{p}", "G": "z", "V": 0, "T": t}) for p in range(partitions)]


def _output(engine: Engine) -> list[tuple[Any, ...]]:
    engine.drain()
    got = []
    for p in range(len(engine.log.describe_topic("O").partitions)):
        for r in engine.log.read_table("O", p).to_pylist():
            v = json.loads(r["value"])
            if v["G"] == "z":  # the rows that close the test
                continue
            got.append((v["T"], v["G"], v["V"], v["PREV"], v["NEXT"], v["S3"], v["C5"]))
    return sorted(got, key=repr)


def _expected(rows: list[dict[str, Any]], upto: int) -> list[tuple[Any, ...]]:
    """DuckDB's results for the rows at `upto` or before (LEAD: among all the rows)."""
    con = duckdb.connect()
    con.execute("create table s(g varchar, v int, t bigint)")
    con.executemany("insert into s values (?, ?, ?)", [(r["G"], r["V"], r["T"]) for r in rows])
    result = con.execute(f"select * from ({EXPECTED}) where t <= ?", [upto]).fetchall()
    con.close()
    # a row's LEAD is known once its successor is final: the last of each group waits
    last = {}
    for r in sorted(rows, key=lambda r: r["T"]):
        last[r["G"]] = r["T"]
    return sorted(
        (tuple(x) for x in result if x[0] != last[x[1]] and x[1] != "z"),
        key=repr,
    )


def _processing_log(engine: Engine) -> list[dict[str, Any]]:
    found = []
    for p in range(len(engine.log.describe_topic("hispeed_processing_log").partitions)):
        for r in engine.log.read_table("hispeed_processing_log", p).to_pylist():
            found.append(json.loads(r["value"]))
    return found


@pytest.mark.parametrize("partitions", [2, 3])
@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_rows_of_several_partitions_in_time_order_match_duckdb(
    tmp_path: Path, partitions: int, batch: int
) -> None:
    """The tester's case: an in-order stream, its rows spread over the partitions, read in
    polls of `batch` records (1: one record at a time)."""
    rows = _rows(300, partitions, seed=partitions * 10 + batch)
    fed = rows + _closing(partitions, 400_000)
    with Engine(tmp_path / "data", properties={"query.max.poll.records": batch}) as engine:
        _start(engine, partitions)
        for start in range(0, len(fed), 50):
            for p, r in fed[start : start + 50]:
                _append(engine, p, [r])
            engine.drain()
        got = _output(engine)
        assert not _processing_log(engine)
    assert got == _expected([r for _, r in rows], 300_000)
    assert len(got) == 298  # every row but each group's last (its LEAD waits)


@pytest.mark.parametrize("partitions", [2, 3])
def test_a_partition_far_ahead_of_the_others(tmp_path: Path, partitions: int) -> None:
    """Each partition's rows appended in one go, partition by partition: the first one's
    rows wait until the last partition's have come."""
    rows = _rows(200, partitions, seed=partitions)
    with Engine(tmp_path / "data") as engine:
        _start(engine, partitions)
        for p in range(partitions):
            _append(engine, p, [r for q, r in rows if q == p])
            engine.drain()
        for p, r in _closing(partitions, 300_000):
            _append(engine, p, [r])
        got = _output(engine)
        assert not _processing_log(engine)
    assert got == _expected([r for _, r in rows], 200_000)


def test_rows_waiting_for_the_watermark_survive_a_restart(tmp_path: Path) -> None:
    """The engine closes while partition 0's rows wait for partition 1's: none is lost or
    sent twice."""
    rows = _rows(240, 2, seed=7)
    data = tmp_path / "data"
    with Engine(data) as engine:
        _start(engine, 2)
        _append(engine, 0, [r for q, r in rows[:160] if q == 0])
        _append(engine, 1, [r for q, r in rows[:80] if q == 1])
        engine.drain()
    with Engine(data) as engine:  # the waiting rows come back from the changelog
        _append(engine, 1, [r for q, r in rows[80:160] if q == 1])
        engine.drain()
    with Engine(data) as engine:
        for p in range(2):
            _append(engine, p, [r for q, r in rows[160:] if q == p])
        engine.drain()
        for p, r in _closing(2, 300_000):
            _append(engine, p, [r])
        got = _output(engine)
    assert got == _expected([r for _, r in rows], 240_000)


def test_a_row_older_than_its_groups_last_is_dropped_and_logged(tmp_path: Path) -> None:
    """Partition 1's row at 3s comes after the watermark has passed group a's row at 4s
    (partition 0): it is dropped, and the processing log names its partition and offset;
    partition 1's row at 3.5s of group b, older than the watermark but not than b's last
    row, is taken in its place."""
    early = [
        (0, {"K": "k1", "G": "a", "V": 1, "T": 1000}),
        (1, {"K": "k2", "G": "b", "V": 2, "T": 2000}),
        (0, {"K": "k3", "G": "a", "V": 3, "T": 4000}),
        (1, {"K": "k4", "G": "a", "V": 4, "T": 5000}),
    ]
    behind = [
        (1, {"K": "k5", "G": "a", "V": 5, "T": 3000}),
        (1, {"K": "k6", "G": "b", "V": 6, "T": 3500}),
        (0, {"K": "k7", "G": "a", "V": 7, "T": 6000}),
        (1, {"K": "k8", "G": "b", "V": 8, "T": 7000}),
    ]
    with Engine(tmp_path / "data") as engine:
        _start(engine, 2)
        for p, r in early:
            _append(engine, p, [r])
            engine.drain()
        _append(engine, 1, [r for _, r in behind[:2]])
        _append(engine, 0, [behind[2][1]])
        _append(engine, 1, [behind[3][1]])
        for p, r in _closing(2, 100_000):
            _append(engine, p, [r])
        got = _output(engine)
        logged = _processing_log(engine)
    kept = [r for _, r in early + behind if r["K"] != "k5"]
    assert got == _expected(kept, 100_000)
    assert [(e["partition"], e["offset"]) for e in logged] == [(1, 2)]
    assert "older than" in logged[0]["message"]


def test_one_partition_takes_each_row_at_once(tmp_path: Path) -> None:
    """With one partition no row waits: LAG's row is written as it is read (rows of other
    groups later than it do not make it late)."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE STREAM s (k STRING KEY, g STRING, v INT, t BIGINT) WITH (kafka_topic='s', "
            "value_format='JSON', partitions=1, timestamp='t');"
            "CREATE STREAM o AS SELECT k, g, v, LAG(v) OVER (PARTITION BY g ORDER BY ROWTIME) "
            "AS prev FROM s EMIT CHANGES;"
        )
        _append(engine, 0, [{"K": "k1", "G": "a", "V": 1, "T": 5000}])
        _append(engine, 0, [{"K": "k2", "G": "b", "V": 2, "T": 1000}])
        _append(engine, 0, [{"K": "k3", "G": "a", "V": 3, "T": 6000}])
        engine.drain()
        out = [json.loads(r["value"]) for r in engine.log.read_table("O", 0).to_pylist()]
    assert out == [
        {"G": "a", "V": 1, "PREV": None},
        {"G": "b", "V": 2, "PREV": None},
        {"G": "a", "V": 3, "PREV": 1},
    ]


def test_a_partition_that_reads_nothing_holds_rows_until_it_is_idle(tmp_path: Path) -> None:
    """Partition 1 has read nothing: partition 0's rows wait until it has had nothing to read
    for the idle timeout (decided by an injected clock), then go; a row it reads after that,
    behind its group's last, is late."""
    now = [0.0]
    rows = [{"K": f"k{i}", "G": "a", "V": i, "T": 1000 * i} for i in (1, 2, 3)]
    with Engine(tmp_path / "data", properties={IDLE_TIMEOUT_PROPERTY: 5000}) as engine:
        _start(engine, 2)
        [task] = engine.tasks.values()
        assert task.idle is not None
        task.idle.clock = lambda: now[0]  # milliseconds, as the test decides
        _append(engine, 0, rows[:2])
        assert _output(engine) == []
        now[0] = 4999.0
        assert _output(engine) == []  # not idle for the timeout yet
        now[0] = 5000.0
        _append(engine, 0, rows[2:])
        assert _output(engine) == _expected(rows, 3000)
        _append(engine, 1, [{"K": "k9", "G": "a", "V": 9, "T": 2500}])
        assert _output(engine) == _expected(rows, 3000)
        assert [(e["partition"], e["offset"]) for e in _processing_log(engine)] == [(1, 0)]
